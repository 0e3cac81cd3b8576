-- Before a password check from one address for one group: refuse while the
-- address is locked out or inside its backoff, else count the attempt as a
-- failure (taken back by auth_clear when the password was right). Atomic, so
-- parallel guesses from one address cannot slip past the limit.
-- KEYS[1] failures hash of (group, address): `n` failures, `t` last attempt (ms)
-- KEYS[2] the group's set of owned keys: KEYS[1] is listed there so it goes with the group
-- KEYS[3] the group hash: a group removed meanwhile gets nothing written (no orphan keys)
-- ARGV[1] now (ms), ARGV[2] window (ms; failures forget after this long quiet),
-- ARGV[3] max failures (0 = no lockout), ARGV[4] failures before backoff starts (0 = no backoff)
-- Backoff after k failures (k >= ARGV[4]): 1 s · 2^(k - ARGV[4]), at most the window.
-- Reply: {1, failures counted} or {0, retry after ms, 1 locked | 0 backoff}.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {0, 0, 1}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local after = tonumber(ARGV[4])
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
if max > 0 and n >= max then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = window end
  return {0, ttl, 1}
end
if after > 0 and n >= after then
  local wait = math.min(1000 * 2 ^ math.min(30, n - after), window)
  if now < t + wait then
    return {0, math.floor(t + wait - now), 0}
  end
end
n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 then
  redis.call('SADD', KEYS[2], KEYS[1])
  -- Many guessing addresses: forget listed keys that have expired by themselves.
  if redis.call('SCARD', KEYS[2]) > 10000 then
    for _, k in ipairs(redis.call('SRANDMEMBER', KEYS[2], 100)) do
      if redis.call('EXISTS', k) == 0 then redis.call('SREM', KEYS[2], k) end
    end
  end
end
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], window)
return {1, n}
