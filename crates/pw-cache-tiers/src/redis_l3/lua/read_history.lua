local limit = tonumber(ARGV[1])
local out = {}
for i, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if #item > limit then out[i] = #item else out[i] = item end
end
return out
