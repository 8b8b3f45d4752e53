-- KEYS[1]: the holds hash, KEYS[2]: the run's set of digests. ARGV: TTL, then the digests. A
-- digest the run holds already is not counted again (a call tried again once Redis is back).
for i = 2, #ARGV do
    if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
        redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
    end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
