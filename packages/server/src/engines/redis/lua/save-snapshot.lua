-- Replaces the stored snapshot unless it would go backwards: a lagging node must never
-- overwrite a newer snapshot (another node may already have trimmed up to it), and a
-- snapshot of an epoch the stream no longer has is dropped. KEYS: meta, snapshot.
-- ARGV: epoch, offset, schema version, state JSON, created at. Returns 1 when stored.

local current = redis.call('HGET', KEYS[1], 'epoch')
if current and current ~= ARGV[1] then return 0 end
local old = redis.call('HMGET', KEYS[2], 'epoch', 'offset')
if old[1] == ARGV[1] and tonumber(old[2]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'offset', ARGV[2], 'v', ARGV[3], 'state', ARGV[4], 'at', ARGV[5])
return 1
