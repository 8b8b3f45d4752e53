-- KEYS[1]: the holds hash, KEYS[2]: the run's set, KEYS[3]: the kept zset. ARGV: the linger,
-- now, the data key prefix (each digest's key is built from it). Data no other run holds, and
-- no problem keeps, expires soon.
for _, ref in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('HINCRBY', KEYS[1], ref, -1) <= 0 then
        redis.call('HDEL', KEYS[1], ref)
        local kept = redis.call('ZSCORE', KEYS[3], ref)
        if not kept or tonumber(kept) <= tonumber(ARGV[2]) then
            redis.call('EXPIRE', ARGV[3] .. ref, ARGV[1])
        end
    end
end
redis.call('DEL', KEYS[2])
return 1
