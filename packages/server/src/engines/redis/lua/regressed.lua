-- A stream whose head went *backwards* in the same epoch lost acknowledged events (a
-- Redis restarted from an AOF that missed its last writes, e.g. `appendfsync everysec`
-- with a write postponed behind a slow fsync, or a failover to a lagging replica). Its
-- next appends would reuse offsets that clients already hold with other content, so it
-- gets a new epoch (every node and client then rebuilds from a snapshot). Only if the
-- epoch is still the one the caller saw and the head is still below what it delivered:
-- whichever node notices first wins, the others read the new epoch.
-- KEYS: meta. ARGV: epoch seen, offset delivered, new epoch. Returns {epoch, head, first}.

local m = redis.call('HMGET', KEYS[1], 'epoch', 'head', 'first')
if m[1] == ARGV[1] and tonumber(m[2] or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[3])
  m[1] = ARGV[3]
end
return {m[1], tonumber(m[2] or '0'), tonumber(m[3] or '1')}
