-- Count one wrong password for a group; the window starts at the first failure.
-- KEYS[1] failure counter
-- ARGV[1] window (seconds)
-- Reply: failures in the current window.
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
