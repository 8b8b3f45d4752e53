-- KEYS: the record, the due zset, the due channel, the webhook's event, the result. ARGV: the
-- submission id, now (ms), the key it must belong to ('*': any), the window when the record
-- has none (ms), how long a settled state is kept (ms). A settled webhook due again, with a
-- window of its own from now; else why not.
local r = redis.call('HMGET', KEYS[1], 'key', 'callback', 'hook_state', 'hook_window_ms')
if not r[1] or (ARGV[3] ~= '*' and r[1] ~= ARGV[3]) then return 'not_found' end
if not r[2] then return 'no_webhook' end
if r[3] == 'waiting' then return 'not_final' end
if r[3] == 'pending' then return 'pending' end
if redis.call('EXISTS', KEYS[4]) == 0 and redis.call('EXISTS', KEYS[5]) == 0 then
    return 'expired'
end
local window = r[4] or ARGV[4]
redis.call('HSET', KEYS[1], 'hook_state', 'pending', 'hook_attempts', 0)
redis.call('HSET', KEYS[1], 'hook_until_ms', ARGV[2] + window)
redis.call('HDEL', KEYS[1], 'hook_done_ms')
redis.call('PERSIST', KEYS[1])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('PEXPIRE', KEYS[4], window + ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 'ok'
