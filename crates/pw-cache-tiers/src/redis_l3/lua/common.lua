local idx, exp, ins = KEYS[1], KEYS[2], KEYS[3]
local prefix, origin = ARGV[1], ARGV[2]
local function ekey(k) return prefix .. 'e:' .. k end
local function hkey(k) return prefix .. 'h:' .. k end
local function publish(kind, k) redis.call('PUBLISH', prefix .. 'events', origin .. ' ' .. kind .. ' ' .. k) end
-- Removes k and its history; `seq` goes with the last entry (so that `seq` without an index
-- means the index was lost).
local function forget(k)
  redis.call('DEL', ekey(k), hkey(k))
  redis.call('ZREM', idx, k)
  redis.call('ZREM', exp, k)
  redis.call('ZREM', ins, k)
  if redis.call('ZCARD', idx) == 0 then redis.call('DEL', KEYS[4]) end
end
-- Whether the indexes are damaged: one is not a sorted set, they do not hold the same number
-- of keys (every script adds and removes a key in all three), or they are gone while `seq`
-- is still there. Checked first by every script that relies on them, which then returns
-- the error DAMAGED (the caller rebuilds them and runs the script again).
local DAMAGED = 'PWCINDEX the indexes of the namespace are damaged'
local function index_damaged()
  local n = {}
  for i = 1, 3 do
    local c = redis.pcall('ZCARD', KEYS[i])
    if type(c) ~= 'number' then return true end
    n[i] = c
  end
  if n[1] ~= n[2] or n[1] ~= n[3] then return true end
  return n[1] == 0 and redis.call('EXISTS', KEYS[4]) == 1
end
local function server_seconds()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- Drops from the indexes the keys whose hash Redis expired.
local function prune()
  local due = redis.call('ZRANGEBYSCORE', exp, '-inf', string.format('%.6f', server_seconds()))
  for _, k in ipairs(due) do
    if redis.call('EXISTS', ekey(k)) == 0 then forget(k) end
  end
end
local function num(v)
  local x = tonumber(v or '')
  if x == nil or x ~= x then return nil end
  return x
end
-- Sets the index score of k from its hash, by policy.
local function rescore(k, policy)
  local field
  if policy == 'lru' then field = 'last_accessed' elseif policy == 'lfu' then field = 'access_count' else return end
  local v = redis.call('HGET', ekey(k), field)
  if num(v) then redis.pcall('ZADD', idx, 'XX', v, k) end
end
-- A get hit noted in memory: last_accessed = max(last_accessed, last), access_count + hits.
local function touch(k, last, hits, policy)
  local ek = ekey(k)
  if redis.call('EXISTS', ek) == 0 then return end
  local cur = num(redis.call('HGET', ek, 'last_accessed'))
  if cur and num(last) > cur then redis.call('HSET', ek, 'last_accessed', last) end
  if redis.call('HEXISTS', ek, 'access_count') == 1 then redis.pcall('HINCRBY', ek, 'access_count', hits) end
  rescore(k, policy)
end
