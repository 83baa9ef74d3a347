if index_damaged() then return redis.error_reply(DAMAGED) end
local key = ARGV[3]
local existed = redis.call('EXISTS', ekey(key))
forget(key)
publish('del', key)
return existed
