-- Deletes events with offset <= upTo and moves `first`, never past head + 1.
-- KEYS: meta, log. ARGV: upTo. Returns the number of events deleted.

local m = redis.call('HMGET', KEYS[1], 'head', 'first')
if not m[1] then return 0 end
local head, first = tonumber(m[1]), tonumber(m[2] or '1')
local target = math.min(math.max(first, tonumber(ARGV[1]) + 1), head + 1)
if target == first then return 0 end
local deleted = redis.call('XTRIM', KEYS[2], 'MINID', target .. '-0')
redis.call('HSET', KEYS[1], 'first', target)
return deleted
