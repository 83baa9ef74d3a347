local key = ARGV[3]
local ek = ekey(key)
local ty = redis.call('TYPE', ek)['ok']
if ty == 'none' then return {0} end
if ty ~= 'hash' or (redis.call('HGET', ek, 'updated_at') or '') ~= ARGV[4] then return {3} end
local n = redis.pcall('HINCRBY', ek, 'failure_count', 1)
if type(n) ~= 'number' then return {4} end
if ARGV[5] ~= '' and n >= tonumber(ARGV[5]) then
  forget(key)
  publish('del', key)
  return {2, n}
end
redis.call('HSET', ek, 'health_status', 'unhealthy')
publish('put', key)
return {1, n}
