-- Appends every event of one call atomically (a Lua script runs alone): assigns dense
-- offsets from each stream's head, stamps them with a time that never goes backwards
-- per stream (so `offsetBefore` can binary-search), and publishes them in the same
-- script, so notifications leave in exactly the order the offsets were given.
--
-- KEYS: streams-set, then (meta, log) per distinct stream.
-- ARGV: channel, epoch-for-new-streams, now-ms, S, S stream names, then per event
--       (stream index 1..S, type, data JSON).
-- Returns (epoch, head before the call, ts) per stream.

local S = tonumber(ARGV[4])
local now = tonumber(ARGV[3])
local epochs, heads, starts, stamps = {}, {}, {}, {}
for i = 1, S do
  local meta = KEYS[2 * i]
  local m = redis.call('HMGET', meta, 'epoch', 'head', 'ts')
  local epoch = m[1]
  if not epoch then
    epoch = ARGV[2]
    redis.call('HSET', meta, 'epoch', epoch, 'head', 0, 'first', 1)
  end
  epochs[i] = epoch
  heads[i] = tonumber(m[2] or '0')
  starts[i] = heads[i]
  local last = tonumber(m[3] or '0')
  if now > last then stamps[i] = now else stamps[i] = last end
  redis.call('SADD', KEYS[1], ARGV[4 + i])
end
local parts = {}
local n = (#ARGV - 4 - S) / 3
for j = 0, n - 1 do
  local base = 5 + S + 3 * j
  local i = tonumber(ARGV[base])
  heads[i] = heads[i] + 1
  redis.call('XADD', KEYS[2 * i + 1], heads[i] .. '-0', 't', ARGV[base + 1], 'd', ARGV[base + 2], 'ts', stamps[i])
  parts[#parts + 1] = '[' .. (i - 1) .. ',' .. heads[i] .. ',' .. stamps[i] .. ',' .. cjson.encode(ARGV[base + 1]) .. ',' .. ARGV[base + 2] .. ']'
end
local names, out = {}, {}
for i = 1, S do
  redis.call('HSET', KEYS[2 * i], 'head', heads[i], 'ts', stamps[i])
  names[i] = ARGV[4 + i]
  out[#out + 1] = epochs[i]
  out[#out + 1] = starts[i]
  out[#out + 1] = stamps[i]
end
redis.call('PUBLISH', ARGV[1], '{"s":' .. cjson.encode(names) .. ',"e":' .. cjson.encode(epochs) .. ',"v":[' .. table.concat(parts, ',') .. ']}')
return out
