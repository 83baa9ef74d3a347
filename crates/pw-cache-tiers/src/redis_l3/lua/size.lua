if index_damaged() then return redis.error_reply(DAMAGED) end
prune()
return redis.call('ZCARD', idx)
