-- KEYS: the queue's lists (every priority level). ARGV: doorbell, queue, sep. Deletes every
-- waiting message of the queue, tenants' included, and returns how many there were.
local q, purged = ARGV[2], 0
for _, list in ipairs(KEYS) do
    redis.call('LREM', list, 0, ARGV[1])
    purged = purged + redis.call('LLEN', list)
    redis.call('DEL', list)
end
for _, tenant in ipairs(redis.call('ZRANGE', key(q, 'tenants'), 0, -1)) do
    local list = tenant_list(q, tenant)
    purged = purged + redis.call('LLEN', list)
    redis.call('DEL', list)
end
redis.call('DEL', key(q, 'tenants'), key(q, 'parked'))
return purged
