-- Enter a new group's ID in the group index, under the ceiling on groups.
-- One key, so concurrent creates on any number of nodes are counted exactly.
-- KEYS[1] group index (sorted set: ID → last activity)
-- ARGV[1] group ID (just taken from the counter), ARGV[2] now (ms), ARGV[3] ceiling (0 = none)
-- Reply: 1 entered, 0 the ceiling is reached (nothing changed; the ID is burnt, never reused),
--        2 the ID is already in the index (a group holds it: the counter went backwards).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 2
end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
