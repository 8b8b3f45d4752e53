-- Shared by every fair_*.lua but fair_unpark.lua (prepended). ARGV[3] is kombu's separator
-- in each: a queue's keys are q .. sep .. what, for the names in worker.keyspace.FAIR_PARTS.
-- The score of a tenant in <queue>␆␖tenants: its running tests, then when it was last served
-- (a counter), so the first member is the tenant running the fewest, served longest ago. A
-- tenant's usage (<queue>␆␖usage: "slot-seconds when") is the integral of its running tests,
-- decaying with USAGE_S: divided by USAGE_S, the slots it has held on average lately, which
-- tells a tenant that holds slots for seconds from one whose bursts are over in milliseconds,
-- whatever either runs at this instant.
-- ACTIVE_S: a tenant seen (publishing, claiming, acking) this recently is still active.
-- USAGE_S: a tenant's use of the fleet is its running tests averaged over about this long.
local SCALE, ACTIVE_S, USAGE_S = 4294967296, 3, 5
local function key(q, what) return q .. ARGV[3] .. what end
local function tenant_list(q, tenant) return q .. ARGV[3] .. 'tenant' .. ARGV[3] .. tenant end
-- who was active lately: an entry older than ACTIVE_S no longer counts, nor does the key
local function seen(q, tenant, now)
    redis.call('ZADD', key(q, 'seen'), now, tenant)
    redis.call('EXPIRE', key(q, 'seen'), ACTIVE_S)
end
local function rescore(q, tenant, running)
    local score = redis.call('ZSCORE', key(q, 'tenants'), tenant)
    if score then
        redis.call('ZADD', key(q, 'tenants'), running * SCALE + tonumber(score) % SCALE, tenant)
    end
end
local function usage(q, tenant, now, running, new)
    local stored = redis.call('HGET', key(q, 'usage'), tenant)
    if not stored then return new end
    local used, at = string.match(stored, '^(%S+) (%S+)$')
    local decay = math.exp(-math.max(0, now - tonumber(at)) / USAGE_S)
    return tonumber(used) * decay + running * USAGE_S * (1 - decay)
end
-- the tenant starts (delta 1) or ends (-1) a test: its usage is brought up to now first
local function account(q, tenant, now, delta, new)
    local running = tonumber(redis.call('HGET', key(q, 'running'), tenant) or '0')
    redis.call('HSET', key(q, 'usage'), tenant,
        string.format('%.6f %.6f', usage(q, tenant, now, running, new), now))
    redis.call('EXPIRE', key(q, 'usage'), 3600)
    running = math.max(0, running + delta)
    if running == 0 then
        redis.call('HDEL', key(q, 'running'), tenant)
    else
        redis.call('HSET', key(q, 'running'), tenant, running)
    end
    rescore(q, tenant, running)
    seen(q, tenant, now)
end
