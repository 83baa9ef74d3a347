if index_damaged() then return redis.error_reply(DAMAGED) end
prune()
local last = -1
if ARGV[3] then last = tonumber(ARGV[3]) - 1 end
return redis.call('ZRANGE', idx, 0, last)
