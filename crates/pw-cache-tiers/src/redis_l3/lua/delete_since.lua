local key = ARGV[3]
local ek = ekey(key)
if redis.call('EXISTS', ek) == 0 then
  forget(key)
  return 0
end
local at = num(redis.call('HGET', ek, 'updated_at'))
if at and at > tonumber(ARGV[4]) then return 0 end
forget(key)
publish('del', key)
return 1
