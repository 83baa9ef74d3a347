if index_damaged() then return redis.error_reply(DAMAGED) end
local key = ARGV[3]
local ek = ekey(key)
local policy = ARGV[5]
local ntouch = tonumber(ARGV[13])
local touches_at = 14
local nfields_at = touches_at + 3 * ntouch
local nfields = tonumber(ARGV[nfields_at])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ty = redis.call('TYPE', ek)['ok']
if ty ~= 'none' and ty ~= 'hash' then redis.call('DEL', ek); ty = 'none' end
local existed = ty == 'hash'
local created = false
if existed then created = redis.call('HGET', ek, 'created_at') end
if tonumber(ARGV[7]) <= now_ms then
  forget(key)
  publish('put', key)
  return {0, 0, 0}
end
local evicted, touched = 0, 0
if existed then
  redis.call('DEL', ek)
else
  forget(key)
  if ARGV[4] ~= '' then
    local max = tonumber(ARGV[4])
    prune()
    local n = redis.call('ZCARD', idx)
    if n >= max then
      if ARGV[12] == '1' and ntouch == 0 then return {2, 0, 0} end
      for j = 0, ntouch - 1 do
        local at = touches_at + 3 * j
        touch(ARGV[at], ARGV[at + 1], ARGV[at + 2], policy)
      end
      touched = 1
      local ev_at = nfields_at + 1 + 2 * nfields
      local want = tonumber(ARGV[ev_at])
      local nv = tonumber(ARGV[ev_at + 1])
      local over_ok = ARGV[ev_at + 2 + 2 * nv] == '1'
      for j = 0, nv - 1 do
        local v, stamp = ARGV[ev_at + 2 + 2 * j], ARGV[ev_at + 3 + 2 * j]
        local at = redis.call('HGET', ekey(v), 'updated_at')
        if at == stamp or (at == false and redis.call('EXISTS', ekey(v)) == 0) then
          forget(v)
          if at then evicted = evicted + 1 end
        end
      end
      if nv > 0 then n = redis.call('ZCARD', idx) end
      if n >= max and not over_ok then
        -- Still full (first round, or others wrote meanwhile): the candidates, in order.
        if want == 0 then want = 8 end
        local need = math.min(n - max + 1 + math.floor(max / tonumber(ARGV[6])), n)
        local count = math.min(need + want, n)
        local first = redis.call('ZRANGE', idx, 0, count - 1, 'WITHSCORES')
        local cands = {}
        if policy == 'fifo' then
          for i = 1, #first, 2 do cands[#cands + 1] = first[i] end
        elseif #first > 0 then
          -- Every entry up to the last score taken, ordered by score, then (LFU) last use, then
          -- insertion: equal scores come back from Redis in key order.
          local bound = first[#first]
          local ranked = {}
          local scores = redis.call('ZRANGEBYSCORE', idx, '-inf', bound, 'WITHSCORES')
          for i = 1, #scores, 2 do
            local k = scores[i]
            local la = 0
            if policy == 'lfu' then la = num(redis.call('HGET', ekey(k), 'last_accessed')) or math.huge end
            ranked[#ranked + 1] = {k, num(scores[i + 1]) or math.huge, la, num(redis.call('ZSCORE', ins, k)) or math.huge}
          end
          table.sort(ranked, function(a, b)
            if a[2] ~= b[2] then return a[2] < b[2] end
            if a[3] ~= b[3] then return a[3] < b[3] end
            if a[4] ~= b[4] then return a[4] < b[4] end
            return a[1] < b[1]
          end)
          local i = 1
          while #cands < count and i <= #ranked do cands[#cands + 1] = ranked[i][1]; i = i + 1 end
        end
        local reply = {3, need, touched, evicted}
        for _, k in ipairs(cands) do
          reply[#reply + 1] = k
          reply[#reply + 1] = read_hash(ekey(k))
        end
        return reply
      end
    end
  end
end
local hset = {'HSET', ek}
for j = 0, nfields - 1 do
  hset[#hset + 1] = ARGV[nfields_at + 1 + 2 * j]
  hset[#hset + 1] = ARGV[nfields_at + 2 + 2 * j]
end
hset[#hset + 1] = 'created_at'
hset[#hset + 1] = created or ARGV[9]
hset[#hset + 1] = 'updated_at'
hset[#hset + 1] = ARGV[9]
redis.call(unpack(hset))
redis.call('PEXPIREAT', ek, ARGV[7])
if redis.call('EXISTS', hkey(key)) == 1 then redis.call('PEXPIREAT', hkey(key), ARGV[7]) end
redis.call('ZADD', exp, ARGV[8], key)
local seq = redis.call('ZSCORE', ins, key)
if not seq then
  seq = redis.call('INCR', KEYS[4])
  redis.call('ZADD', ins, seq, key)
end
local score = seq
if policy == 'lru' then score = ARGV[10] elseif policy == 'lfu' then score = ARGV[11] end
redis.call('ZADD', idx, score, key)
publish('put', key)
return {1, evicted, touched}
