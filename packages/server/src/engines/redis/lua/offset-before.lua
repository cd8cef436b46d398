-- The highest kept offset stamped strictly before a time: a binary search over the
-- log, valid because stamps never decrease along a stream. KEYS: meta, log. ARGV: ms.

local m = redis.call('HMGET', KEYS[1], 'head', 'first')
if not m[1] then return 0 end
local lo, hi = tonumber(m[2] or '1'), tonumber(m[1])
local t = tonumber(ARGV[1])
local found = 0
while lo <= hi do
  local mid = math.floor((lo + hi) / 2)
  local entry = redis.call('XRANGE', KEYS[2], mid .. '-0', mid .. '-0')
  local ts = nil
  if entry[1] then
    local fields = entry[1][2]
    for k = 1, #fields, 2 do
      if fields[k] == 'ts' then ts = tonumber(fields[k + 1]) end
    end
  end
  -- A missing entry counts as "not before": trimming then keeps more, never less.
  if ts and ts < t then
    found = mid
    lo = mid + 1
  else
    hi = mid - 1
  end
end
return found
