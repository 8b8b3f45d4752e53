-- KEYS: the runs hash, their deadlines, the fleet's total, the tenant's hash. ARGV: run,
-- tenant, tests, bytes, now, deadline, max tests in flight, the tenant's max tests, its max
-- bytes, the keys' TTL, "peek" to check without recording, the tenant key prefix. Returns
-- {"ok"} or {what is over, what the tenant (or the fleet) held already}. A run recorded
-- already is admitted as it was (a call tried again once Redis is back), never counted twice.
local now = tonumber(ARGV[5])
for _, run in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
    forget(run, ARGV[12])
end
if ARGV[11] ~= 'peek' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {'ok'} end
local tests, bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[7]) > 0 and total + tests > tonumber(ARGV[7]) then
    return {'fleet', tostring(total)}
end
local held = redis.call('HMGET', KEYS[4], 'tests', 'bytes')
local held_tests, held_bytes = tonumber(held[1] or '0'), tonumber(held[2] or '0')
if tonumber(ARGV[8]) > 0 and held_tests + tests > tonumber(ARGV[8]) then
    return {'tests', tostring(held_tests)}
end
if tonumber(ARGV[9]) > 0 and held_bytes + bytes > tonumber(ARGV[9]) then
    return {'bytes', tostring(held_bytes)}
end
if ARGV[11] == 'peek' then return {'ok'} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('INCRBY', KEYS[3], tests)
redis.call('HINCRBY', KEYS[4], 'tests', tests)
redis.call('HINCRBY', KEYS[4], 'bytes', bytes)
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[10]) end
return {'ok'}
