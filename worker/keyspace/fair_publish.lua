-- KEYS: the tenant's list, <queue>. ARGV: message, tenant, sep, doorbell, now, queue.
redis.call('LPUSH', KEYS[1], ARGV[1])
local q, tenant = ARGV[6], ARGV[2]
if not redis.call('ZSCORE', key(q, 'tenants'), tenant) then
    local running = tonumber(redis.call('HGET', key(q, 'running'), tenant) or '0')
    redis.call('ZADD', key(q, 'tenants'), running * SCALE, tenant)
end
redis.call('LPUSH', KEYS[2], ARGV[4])
seen(q, tenant, ARGV[5])
return 1
