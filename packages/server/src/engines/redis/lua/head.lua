-- The stream's head, creating its epoch when it has none (HSETNX: whichever node comes
-- first wins, every node then reads the same epoch). KEYS: meta. ARGV: epoch candidate.

if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'head', 0, 'first', 1)
end
local m = redis.call('HMGET', KEYS[1], 'epoch', 'head', 'first')
return {m[1], tonumber(m[2] or '0'), tonumber(m[3] or '1')}
