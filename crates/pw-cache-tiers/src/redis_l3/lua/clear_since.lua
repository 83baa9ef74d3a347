local since = tonumber(ARGV[3])
local from = tonumber(ARGV[5])
local n, kept, seen = 0, 0, 0
for _, k in ipairs(redis.call('ZRANGE', idx, from, from + tonumber(ARGV[4]) - 1)) do
  seen = seen + 1
  local at = num(redis.call('HGET', ekey(k), 'updated_at'))
  if at and at > since then
    kept = kept + 1
  else
    n = n + redis.call('EXISTS', ekey(k))
    forget(k)
    publish('del', k)
  end
end
return {n, kept, seen}
