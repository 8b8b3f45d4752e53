-- Shared by admission_admit.lua and admission_release.lua (prepended): forget one run (lapsed
-- or ended), taking its figures off the counters. KEYS[1]: the runs hash, KEYS[2]: their
-- deadlines, KEYS[3]: the fleet's total; a tenant's hash is built from its key prefix.
local function forget(run, tenant_prefix)
    local record = redis.call('HGET', KEYS[1], run)
    if record then
        local tenant, tests, bytes = string.match(record, '^(%S+) (%d+) (%d+)$')
        redis.call('HINCRBY', tenant_prefix .. tenant, 'tests', -tonumber(tests))
        redis.call('HINCRBY', tenant_prefix .. tenant, 'bytes', -tonumber(bytes))
        redis.call('DECRBY', KEYS[3], tests)
        redis.call('HDEL', KEYS[1], run)
    end
    redis.call('ZREM', KEYS[2], run)
end
