-- Head, trim point and the events after `after`, read together so "trimmed" and the
-- events describe the same moment. KEYS: meta, log. ARGV: after, limit.
-- Returns {0} for a stream without an epoch, {1, epoch, head, first} when trimmed,
-- {2, epoch, head, first, entries} otherwise.

local m = redis.call('HMGET', KEYS[1], 'epoch', 'head', 'first')
if not m[1] then return {0} end
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local head, first = tonumber(m[2] or '0'), tonumber(m[3] or '1')
if after < first - 1 then return {1, m[1], head, first} end
if limit <= 0 or after >= head then return {2, m[1], head, first, {}} end
return {2, m[1], head, first, redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', limit)}
