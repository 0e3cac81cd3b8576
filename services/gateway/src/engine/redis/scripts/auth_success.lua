-- Take back one counted attempt whose password turned out right; never below zero.
-- KEYS[1] failure counter
-- Reply: the count after.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
