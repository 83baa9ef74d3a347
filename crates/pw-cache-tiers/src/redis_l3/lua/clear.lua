if index_damaged() then return redis.error_reply(DAMAGED) end
local n = 0
for _, k in ipairs(redis.call('ZRANGE', idx, 0, tonumber(ARGV[3]) - 1)) do
  n = n + redis.call('EXISTS', ekey(k))
  forget(k)
end
local left = redis.call('ZCARD', idx)
if left == 0 then
  redis.call('DEL', idx, exp, ins, KEYS[4])
  publish('clear', '-')
end
return {n, left}
