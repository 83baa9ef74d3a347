local key = ARGV[3]
local ek = ekey(key)
if redis.call('EXISTS', ek) == 0 then return -1 end
local id = redis.call('INCR', KEYS[5])
local hk = hkey(key)
redis.call('LPUSH', hk, '{"id":' .. string.format('%d', id) .. ',' .. ARGV[5])
redis.call('LTRIM', hk, 0, tonumber(ARGV[4]) - 1)
local ttl = redis.call('PTTL', ek)
if ttl > 0 then redis.call('PEXPIRE', hk, ttl) else redis.call('PERSIST', hk) end
publish('health', key)
return id
