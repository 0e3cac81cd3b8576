-- Store a new group under an ID the caller took from the counter, never
-- overwriting: if the ID is taken (the counter went backwards, e.g. after a
-- failover), reply 0 and the caller takes the next ID.
-- KEYS[1] group hash
-- ARGV[1] password hash, ARGV[2] creator, ARGV[3] created-at (ms), ARGV[4] epoch,
-- ARGV[5] now (ms): its first activity, for retention
-- Reply: 1 stored, 0 taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'c', ARGV[2], 'at', ARGV[3], 'ep', ARGV[4], 'seq', 0, 'la', ARGV[5], 'hb', 0)
return 1
