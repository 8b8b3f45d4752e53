-- KEYS: the tenant hash. ARGV: delivery tag, now, sep. The claim of that tag is over (acked,
-- rejected or given back): its tenant runs one test fewer, and one parked doorbell goes back to
-- the front of its queue, for the consumer whose slot this frees.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
local tenant, q = string.match(record, '^(%S+) (.*)$')
account(q, tenant, tonumber(ARGV[2]), -1, 0)
redis.call('LMOVE', key(q, 'parked'), q, 'RIGHT', 'RIGHT')
return 1
