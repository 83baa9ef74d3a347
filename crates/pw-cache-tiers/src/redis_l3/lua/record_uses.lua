local changed = 0
for i = 5, #ARGV, 4 do
  local k, count, last, ev = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ek = ekey(k)
  if redis.call('EXISTS', ek) == 1 then
    local cur = num(redis.call('HGET', ek, 'last_accessed'))
    if cur and cur <= num(last) then
      local set = {'HSET', ek, 'access_count', count, 'last_accessed', last, 'updated_at', ARGV[4]}
      if ev == '1' then
        set[#set + 1] = 'evicted_from_l1'
        set[#set + 1] = '1'
      end
      redis.call(unpack(set))
      rescore(k, ARGV[3])
      changed = changed + 1
    end
  end
end
return changed
