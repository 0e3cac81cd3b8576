-- One hit against a per-address budget: a fixed window from the first hit.
-- KEYS[1] budget counter
-- ARGV[1] window (ms)
-- Reply: {hits in the window, ms until it ends}.
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
