-- KEYS: the entry, the LRU zset, the sizes hash, the total. ARGV: its stored size, now, TTL,
-- budget. Renews the entry and records its use (and size, once), then evicts the least
-- recently used (any whose TTL has run out first) until the whole fits the budget; the entry
-- itself never goes.
local now, ttl, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('EXPIRE', KEYS[1], ttl)
if redis.call('HSETNX', KEYS[3], KEYS[1], ARGV[1]) == 1 then
    redis.call('INCRBY', KEYS[4], ARGV[1])
end
-- scores are microseconds, strictly increasing: uses in one microsecond keep their order
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local score = now
if #newest > 0 and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
redis.call('ZADD', KEYS[2], score, KEYS[1])
local total = tonumber(redis.call('GET', KEYS[4]) or '0')
local evicted = 0
while true do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if #oldest == 0 or oldest[1] == KEYS[1] then break end
    if total <= budget and tonumber(oldest[2]) > now - ttl * 1000000 then break end
    redis.call('ZREM', KEYS[2], oldest[1])
    total = total - tonumber(redis.call('HGET', KEYS[3], oldest[1]) or '0')
    redis.call('HDEL', KEYS[3], oldest[1])
    redis.call('DEL', oldest[1])
    evicted = evicted + 1
end
redis.call('SET', KEYS[4], total)
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
return evicted
