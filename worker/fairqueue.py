"""Fair queueing between tenants, inside the broker: the Redis side of :mod:`worker.transport`.

A queue is first in, first out; a tenant that sends a thousand tests ahead of another's five
would make the five wait for the thousand. So a task message that names its tenant (the
``runner_tenant`` header, which :func:`worker.workflow.canvas` puts on every compile and test
task) is not queued in line. Publishing it (:data:`PUBLISH`, one atomic step)

- appends it to its tenant's own list, ``<queue>␆␖tenant␆␖<name>``;
- marks the tenant as having work in ``<queue>␆␖tenants``, a sorted set ordered by the tests the
  tenant is running now, then by how long ago it was last served (a tenant new to the set
  first, as fq_codel favours a new flow);
- pushes a *doorbell* (:data:`DOORBELL`, not a message) onto the queue's own list, which is what
  consumers wait on; so a waiting consumer wakes at once, and ``LLEN`` of the queue still
  counts every waiting task, tenant's or not (KEDA and ``runner status`` read it).

A consumer that pops a doorbell (:data:`CLAIM`) takes, in the same atomic step, the first
message of the tenant that comes first in that set, and records it as claimed, with its tenant,
so that its ack (:data:`RELEASE`) counts it off again. Messages without a tenant (the join,
``runner.submit``, anything a foreign producer sends) stay in line with the doorbells, first in,
first out, and are never held back. (A tenant's own messages keep their order and ignore
priority: the fleet sends none.)

**A share of the fleet per tenant.** Choosing the tenant running the fewest is not enough when
one tenant's tests hold their slots for seconds (infinite loops, up to their wall limit): it
would take every slot while the other tenant has nothing waiting, and the other's next test
would wait for one to free. So while another tenant is *active* (has work waiting or running,
or was seen within :data:`ACTIVE_S`), no tenant runs more than ``RUNNER_TENANT_MAX_SHARE_PCT``
of the fleet's slots at once; the slots are what the live workers' heartbeats report
(``_runner.slots``, kept by :class:`worker.transport.Reclaimer`). A doorbell that finds only
such held-back work is *parked* (``<queue>␆␖parked``); each ack moves one back onto the queue,
so the consumer whose slot just freed looks again at once, and the reclaimer moves all of them
back every few seconds, so a share that no longer applies (the other tenant went idle) frees
its work soon. A tenant alone gets the whole fleet.

Every count here is kept in the same scripts that claim and ack, so it cannot drift from
kombu's own record of unacked messages: a message restored to the queue (a dead worker's, or
past the visibility timeout) is counted off as it leaves the unacked hash, and comes back as an
ordinary message of the queue, in line, counted again for its tenant when claimed.

The keys, for queue ``q`` and kombu's separator ``␆␖`` (``\\x06\\x16``): the tenant lists,
``q␆␖tenants``, ``q␆␖running`` (tenant -> tests running), ``q␆␖seen`` (tenant -> when last
active), ``q␆␖served`` (a counter), ``q␆␖parked``, and ``unacked_tenant`` (delivery tag ->
tenant and queue). Their sizes are bounded by the tenants with work, and they hold no
submission's data: they are the fleet's own, like kombu's bindings.
"""

from __future__ import annotations

import re

TENANT_HEADER = "runner_tenant"
DOORBELL = "runner:doorbell"  # not JSON: no kombu message can be equal to it
ACTIVE_S = 3  # a tenant seen (publishing, claiming, acking) this recently is still active
USAGE_S = 5  # a tenant's use of the fleet is its running tests averaged over about this long
SLOTS_KEY = "_runner.slots"  # every live worker's slots, summed by the reclaimers
# the contract's tenant pattern (worker.contract.SubmissionIn.tenant): only such a name becomes
# part of a key; a header with anything else is an ordinary message
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def tenant_list(queue: str, sep: str, tenant: str) -> str:
    return f"{queue}{sep}tenant{sep}{tenant}"


def fair_key(queue: str, sep: str, what: str) -> str:
    """``tenants``, ``running``, ``seen``, ``served`` or ``parked`` of ``queue``."""
    return f"{queue}{sep}{what}"


def tenant_of_headers(headers: object) -> str | None:
    """The tenant a message's headers name, when it is a valid tenant name; else None."""
    tenant = headers.get(TENANT_HEADER) if isinstance(headers, dict) else None
    return tenant if isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant) else None


# What every script shares. The score of a tenant in <queue>␆␖tenants: its running tests, then
# when it was last served (a counter), so the first member is the tenant running the fewest,
# served longest ago. A tenant's usage (<queue>␆␖usage: "slot-seconds when") is the integral
# of its running tests, decaying with USAGE_S: divided by USAGE_S, the slots it has held on
# average lately, which tells a tenant that holds slots for seconds from one whose bursts are
# over in milliseconds, whatever either runs at this instant.
_COMMON = f"""
local SCALE, ACTIVE_S, USAGE_S = 4294967296, {ACTIVE_S}, {USAGE_S}
local function key(q, what) return q .. ARGV[3] .. what end
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
"""

# KEYS: the tenant's list, <queue>. ARGV: message, tenant, sep, doorbell, now, queue.
PUBLISH = (
    _COMMON
    + """
redis.call('LPUSH', KEYS[1], ARGV[1])
local q, tenant = ARGV[6], ARGV[2]
if not redis.call('ZSCORE', key(q, 'tenants'), tenant) then
    local running = tonumber(redis.call('HGET', key(q, 'running'), tenant) or '0')
    redis.call('ZADD', key(q, 'tenants'), running * SCALE, tenant)
end
redis.call('LPUSH', KEYS[2], ARGV[4])
seen(q, tenant, ARGV[5])
return 1
"""
)

# KEYS: the lists to pop in order (the consumer's hand-off list first, then the queues' lists
# in BRPOP's order), then the unacked hash, its index, the owner hash, the tenant hash.
# ARGV: now, consumer id ("" records no owner), sep, doorbell, share %, then the queue of each
# list. Returns {queue or list, item, tag} when a message was recorded; {list, item}
# for an item that is not a kombu envelope, handed over unrecorded as kombu would; false when
# nothing may be taken. RPOP comes first on purpose: on a full Redis (noeviction) a script that
# has already written may go on, so the record can never be refused after the pop.
CLAIM = (
    _COMMON
    + """
local now, consumer, doorbell = tonumber(ARGV[1]), ARGV[2], ARGV[4]
local share = tonumber(ARGV[5])
local n = #KEYS - 4
local unacked, index, owners, tenants = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]

local limit_cached
local function cap()
    if limit_cached == nil then
        local slots = tonumber(redis.call('GET', '_runner.slots') or '0')
        limit_cached = 0
        if share > 0 and slots > 0 then
            limit_cached = math.max(1, math.floor(slots * share / 100))
        end
    end
    return limit_cached
end
-- A tenant new to the fleet counts as having held half its share lately: lighter than a
-- tenant that has held its share, so it is not held back behind one; heavier than one whose
-- tests are over in milliseconds, so it cannot take every free slot the moment it comes.
local function newcomer() return cap() * USAGE_S / 2 end

local function record(q, from, item, tenant)
    local ok, msg = pcall(cjson.decode, item)
    local props = ok and type(msg) == 'table' and msg.properties
    local info = type(props) == 'table' and props.delivery_info
    local tag = type(info) == 'table' and props.delivery_tag
    if type(tag) ~= 'string' or type(info.exchange) ~= 'string'
            or type(info.routing_key) ~= 'string' then
        return {from, item}
    end
    redis.call('HSET', unacked, tag, '[' .. item .. ',' .. cjson.encode(info.exchange)
        .. ',' .. cjson.encode(info.routing_key) .. ']')
    redis.call('ZADD', index, now, tag)
    if consumer ~= '' then redis.call('HSET', owners, tag, consumer) end
    if tenant == nil and type(msg.headers) == 'table' then  -- given back to the queue, in line
        local named = msg.headers.runner_tenant
        if type(named) == 'string' and #named <= 64
                and string.match(named, '^[%w][%w_.:-]*$') then
            tenant = named
        end
    end
    if tenant then
        redis.call('HSET', tenants, tag, tenant .. ' ' .. q)
        account(q, tenant, now, 1, newcomer())
    end
    return {from, item, tag}
end


-- Which tenants are held to their share now: a tenant running ``limit`` tests or more while
-- another active tenant (seen within ACTIVE_S, or running tests) has used the fleet less
-- lately. Tenants that have used it alike are not held, so busy tenants share every slot.
local function holding(q, limit)
    for _, gone in ipairs(redis.call('ZRANGEBYSCORE', key(q, 'seen'), '-inf', now - ACTIVE_S)) do
        if redis.call('HEXISTS', key(q, 'running'), gone) == 0 then
            redis.call('HDEL', key(q, 'usage'), gone)
        end
    end
    redis.call('ZREMRANGEBYSCORE', key(q, 'seen'), '-inf', now - ACTIVE_S)
    local active = {}
    local counts = redis.call('HGETALL', key(q, 'running'))
    for i = 1, #counts, 2 do active[counts[i]] = tonumber(counts[i + 1]) end
    for _, tenant in ipairs(redis.call('ZRANGE', key(q, 'seen'), 0, -1)) do
        active[tenant] = active[tenant] or 0
    end
    local used, lowest, second, lightest = {}, math.huge, math.huge, nil
    for tenant, running in pairs(active) do
        local u = usage(q, tenant, now, running, newcomer())
        used[tenant] = u
        if u < lowest then
            lowest, second, lightest = u, lowest, tenant
        elseif u < second then
            second = u
        end
    end
    return function(tenant, running)
        if running < limit then return false end
        local others = tenant == lightest and second or lowest
        return others < (used[tenant] or usage(q, tenant, now, running, newcomer()))
    end
end

-- The first message of the first tenant in line that is not held to its share, recorded;
-- 'held' when every tenant with work (of the first 16 in line) is held; nil when none has work.
local function take_fairly(q)
    local limit, held, waiting = cap(), nil, false
    local line = redis.call('ZRANGE', key(q, 'tenants'), 0, 15, 'WITHSCORES')
    for i = 1, #line, 2 do
        local tenant, score = line[i], tonumber(line[i + 1])
        local running = math.floor(score / SCALE)
        if limit > 0 and running >= limit then held = held or holding(q, limit) end
        if held and held(tenant, running) then
            waiting = true
        else
            local list = q .. ARGV[3] .. 'tenant' .. ARGV[3] .. tenant
            local item = redis.call('RPOP', list)
            if item then
                if redis.call('LLEN', list) == 0 then
                    redis.call('ZREM', key(q, 'tenants'), tenant)
                else
                    local served = redis.call('INCR', key(q, 'served')) % SCALE
                    redis.call('EXPIRE', key(q, 'served'), 86400)  -- an idle fleet forgets
                    redis.call('ZADD', key(q, 'tenants'), score - score % SCALE + served, tenant)
                end
                return record(q, q, item, tenant)
            end
            redis.call('ZREM', key(q, 'tenants'), tenant)  -- listed, but its list was purged
        end
    end
    if waiting then return 'held' end
    return nil
end

for i = 1, n do
    local q = ARGV[5 + i]
    -- doorbells of held-back work are parked in one go, up to a bound per claim
    for _ = 1, 100 do
        local item = redis.call('RPOP', KEYS[i])
        if item ~= doorbell then
            if item then return record(q, KEYS[i], item, nil) end
            break
        end
        local taken = take_fairly(q)
        if type(taken) == 'table' then return taken end
        if taken == 'held' then redis.call('LPUSH', key(q, 'parked'), doorbell) end
        -- nil: a doorbell whose message is gone (purged); dropped
    end
end
return false
"""
)

# KEYS: the tenant hash. ARGV: delivery tag, now, sep. The claim of that tag is over (acked,
# rejected or given back): its tenant runs one test fewer, and one parked doorbell goes back to
# the front of its queue, for the consumer whose slot this frees.
RELEASE = (
    _COMMON
    + """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local tenant, q = string.match(record, '^(%S+) (.*)$')
account(q, tenant, tonumber(ARGV[2]), -1, 0)
redis.call('LMOVE', key(q, 'parked'), q, 'RIGHT', 'RIGHT')
return 1
"""
)

# KEYS: <queue>␆␖parked, <queue>. Every parked doorbell back onto the queue: each is looked at
# again by the next claim, and parked again if its tenant is still held back.
UNPARK = """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do moved = moved + 1 end
return moved
"""

# KEYS: the queue's lists (every priority level). ARGV: doorbell, queue, sep. Deletes every
# waiting message of the queue, tenants' included, and returns how many there were.
PURGE = (
    _COMMON
    + """
local q, purged = ARGV[2], 0
for _, list in ipairs(KEYS) do
    redis.call('LREM', list, 0, ARGV[1])
    purged = purged + redis.call('LLEN', list)
    redis.call('DEL', list)
end
for _, tenant in ipairs(redis.call('ZRANGE', key(q, 'tenants'), 0, -1)) do
    local list = q .. ARGV[3] .. 'tenant' .. ARGV[3] .. tenant
    purged = purged + redis.call('LLEN', list)
    redis.call('DEL', list)
end
redis.call('DEL', key(q, 'tenants'), key(q, 'parked'))
return purged
"""
)
