local ek = ekey(ARGV[3])
if redis.call('TYPE', ek)['ok'] ~= 'hash' then return -1 end
if (redis.call('HGET', ek, 'username_encrypted') or '') ~= ARGV[4] then return 0 end
if (redis.call('HGET', ek, 'password_encrypted') or '') ~= ARGV[6] then return 0 end
if ARGV[5] ~= '' then redis.call('HSET', ek, 'username_encrypted', ARGV[5]) end
if ARGV[7] ~= '' then redis.call('HSET', ek, 'password_encrypted', ARGV[7]) end
return 1
