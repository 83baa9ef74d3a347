local mode = ARGV[3]
-- Field f of hash ek when it is a short number (its text), else nil.
local function small(ek, f)
  if redis.call('HSTRLEN', ek, f) > 64 then return nil end
  local v = redis.call('HGET', ek, f)
  if num(v) then return v end
  return nil
end
if mode == 'reset' then
  for i = 1, 3 do
    local ty = redis.call('TYPE', KEYS[i])['ok']
    if ty ~= 'zset' and ty ~= 'none' then redis.call('DEL', KEYS[i]) end
  end
  return 0
elseif mode == 'stamps' then
  local out = {}
  for i = 4, #ARGV do
    local ek = ekey(ARGV[i])
    local at = nil
    if redis.call('TYPE', ek)['ok'] == 'hash' then at = small(ek, 'created_at') end
    out[#out + 1] = at or '0'
  end
  return out
elseif mode == 'add' then
  local policy = ARGV[4]
  local n = 0
  for i = 5, #ARGV do
    local k = ARGV[i]
    local ek = ekey(k)
    local ty = redis.call('TYPE', ek)['ok']
    if ty ~= 'none' then
      local expires, score = nil, nil
      local hash = ty == 'hash'
      if hash then expires = small(ek, 'expires_at') end
      if not expires then
        local at = redis.call('PEXPIRETIME', ek)
        if at > 0 then expires = string.format('%.3f', at / 1000) else expires = '+inf' end
      end
      local seq = redis.call('ZSCORE', ins, k)
      if not seq then
        seq = redis.call('INCR', KEYS[4])
        redis.call('ZADD', ins, seq, k)
      end
      if policy == 'lru' then
        if hash then score = small(ek, 'last_accessed') end
      elseif policy == 'lfu' then
        if hash then score = small(ek, 'access_count') end
      else
        score = seq
      end
      redis.call('ZADD', exp, expires, k)
      redis.call('ZADD', idx, score or 0, k)
      n = n + 1
    end
  end
  return n
elseif mode == 'drop' then
  local n = 0
  for i = 4, #ARGV do
    if redis.call('EXISTS', ekey(ARGV[i])) == 0 then
      forget(ARGV[i])
      n = n + 1
    end
  end
  return n
elseif mode == 'finish' then
  local n = redis.call('ZCARD', idx)
  if n == 0 then redis.call('DEL', KEYS[4]) end
  return n
end
return redis.error_reply('ERR unknown mode')
