-- KEYS: the lists to pop in order (the consumer's hand-off list first, then the queues' lists
-- in BRPOP's order), then the unacked hash, its index, the owner hash, the tenant hash, the
-- fleet's slots. ARGV: now, consumer id ("" records no owner), sep, doorbell, share %, then the
-- queue of each list. Returns {queue or list, item, tag} when a message was recorded; {list,
-- item} for an item that is not a kombu envelope, handed over unrecorded as kombu would; false
-- when nothing may be taken. RPOP comes first on purpose: on a full Redis (noeviction) a script
-- that has already written may go on, so the record can never be refused after the pop.
local now, consumer, doorbell = tonumber(ARGV[1]), ARGV[2], ARGV[4]
local share = tonumber(ARGV[5])
local n = #KEYS - 5
local unacked, index, owners, tenants = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3], KEYS[n + 4]
local slots_key = KEYS[n + 5]

local limit_cached
local function cap()
    if limit_cached == nil then
        local slots = tonumber(redis.call('GET', slots_key) or '0')
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
            local list = tenant_list(q, tenant)
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
