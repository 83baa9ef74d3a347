local older = tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV do
  local hk = hkey(ARGV[i])
  for _, item in ipairs(redis.call('LRANGE', hk, 0, -1)) do
    local ok, rec = pcall(cjson.decode, item)
    if ok and type(rec) == 'table' and type(rec.check_time) == 'number' and rec.check_time < older then
      n = n + redis.call('LREM', hk, 1, item)
    end
  end
end
return n
