-- The entry hash ek, only the fields `names` (all when nil), never transferring a long value:
-- {} when there is no key ek; {'!type'} when its key holds another type; {'!size', field, length}
-- when a field is longer than its limit; {'!none'} when the hash holds none of the fields;
-- else name, value, … of the fields it holds. A hash within BUDGET (the common case: one
-- MEMORY USAGE, then HGETALL) is read whole, and its values are checked against their limits
-- by the caller; a larger one has each field's length checked (HSTRLEN) before any is read,
-- and only the entry's fields are read.
local function read_hash(ek, names)
  local usage = redis.call('MEMORY', 'USAGE', ek, 'SAMPLES', '0')
  if not usage then return {} end
  if usage <= BUDGET then
    local got
    if names then got = redis.pcall('HMGET', ek, unpack(names)) else got = redis.pcall('HGETALL', ek) end
    if got.err then return {'!type'} end
    if not names then return got end
    local out = {}
    for i, f in ipairs(names) do
      if got[i] then
        out[#out + 1] = f
        out[#out + 1] = got[i]
      end
    end
    if #out == 0 then return {'!none'} end
    return out
  end
  local fields, limits = entry_fields()
  names = names or fields
  local ty = redis.call('TYPE', ek)['ok']
  if ty ~= 'hash' then return {'!type'} end
  for _, f in ipairs(names) do
    local n = redis.call('HSTRLEN', ek, f)
    if n > (limits[f] or 0) then return {'!size', f, n} end
  end
  local values = redis.call('HMGET', ek, unpack(names))
  local out = {}
  for i, f in ipairs(names) do
    if values[i] then
      out[#out + 1] = f
      out[#out + 1] = values[i]
    end
  end
  if #out == 0 then return {'!none'} end
  return out
end
