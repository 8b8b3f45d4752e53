-- KEYS: <queue>␆␖parked, <queue>. Every parked doorbell back onto the queue: each is looked at
-- again by the next claim, and parked again if its tenant is still held back.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do moved = moved + 1 end
return moved
