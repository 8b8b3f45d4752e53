-- KEYS: per submission, its result, its progress hash and its record. Returns per submission
-- {state, verdict, passed, total, created (ms)}, "" where there is none yet.
local out = {}
for i = 1, #KEYS, 3 do
    local record = redis.call('HMGET', KEYS[i + 2], 'total', 'created_ms')
    local stored = redis.call('GET', KEYS[i])
    local row = {'queued', '', '', record[1] or '', record[2] or ''}
    if stored then
        local ok, meta = pcall(cjson.decode, stored)
        local r = ok and meta['result']
        row[1] = 'done'
        if type(r) == 'table' and meta['status'] == 'SUCCESS' then
            row[2] = tostring(r['verdict'])
            row[3], row[4] = tostring(r['passed']), tostring(r['total'])
        else
            row[2] = 'IE'  -- a join that failed reads as the contract's IE (stored_result)
        end
    elseif redis.call('EXISTS', KEYS[i + 1]) == 1 then
        row[1] = 'running'
    end
    out[#out + 1] = row
end
return out
