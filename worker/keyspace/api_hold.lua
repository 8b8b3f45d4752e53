-- KEYS: a sorted set of holders. ARGV: the cap, now (ms), the holder, until (ms).
-- Returns 1 when admitted (the holder counted until `until`, or until it is removed), else 0;
-- a holder admitted again keeps its place, until the new `until`.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local held = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
