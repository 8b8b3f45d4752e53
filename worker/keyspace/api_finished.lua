-- KEYS: the record, the due zset, the due channel. ARGV: the submission id, now (ms), the
-- in-flight key prefix (the owner's key is built from it). A webhook's window starts now; its
-- record loses its expiry until it is settled.
local owner = redis.call('HGET', KEYS[1], 'key')
if not owner then return 0 end
redis.call('HSET', KEYS[1], 'finished_ms', ARGV[2])
if owner ~= '' then redis.call('ZREM', ARGV[3] .. owner, ARGV[1]) end
if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
    local window = redis.call('HGET', KEYS[1], 'hook_window_ms')
    if window then redis.call('HSET', KEYS[1], 'hook_until_ms', ARGV[2] + window) end
    redis.call('HSET', KEYS[1], 'hook_state', 'pending')
    redis.call('PERSIST', KEYS[1])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
    redis.call('PUBLISH', KEYS[3], ARGV[1])
end
return 1
