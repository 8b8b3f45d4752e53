-- KEYS[1]: a run's hints hash. ARGV: field, test index pairs, then the TTL. Each field keeps
-- the lowest index it was given.
for i = 1, #ARGV - 1, 2 do
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    if not current or tonumber(ARGV[i + 1]) < tonumber(current) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV])
return 1
