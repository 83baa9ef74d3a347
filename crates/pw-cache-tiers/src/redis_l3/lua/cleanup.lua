if index_damaged() then return redis.error_reply(DAMAGED) end
local now = ARGV[3]
if ARGV[6] == 'del' then
  local n = 0
  for i = 7, #ARGV, 2 do
    local k, stamp = ARGV[i], ARGV[i + 1]
    local score = redis.call('ZSCORE', exp, k)
    if score and tonumber(score) <= tonumber(now) and redis.call('HGET', ekey(k), 'updated_at') == stamp then
      forget(k)
      n = n + 1
    end
  end
  return n
end
local seen = 0
local reply = {0}
for _, k in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', tonumber(ARGV[5]), tonumber(ARGV[4]))) do
  seen = seen + 1
  if redis.call('EXISTS', ekey(k)) == 0 then
    forget(k)
  else
    reply[#reply + 1] = k
    reply[#reply + 1] = read_hash(ekey(k))
  end
end
reply[1] = seen
return reply
