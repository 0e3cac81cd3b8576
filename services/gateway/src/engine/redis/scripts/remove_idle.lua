-- Retention: remove one group if it is idle, atomically in its own slot (the
-- index that named it as a candidate may live elsewhere on Redis Cluster, and
-- its score may be older than the group's real activity).
-- KEYS[1] group hash, KEYS[2] history stream, KEYS[3] members hash,
-- KEYS[4] set of further keys the group owns (e.g. wrong-password counts per address),
-- KEYS[5] the group's dedupe set (idempotent sends)
-- ARGV[1] now (ms), ARGV[2] retention (ms), ARGV[3] the group's key prefix,
-- ARGV[4] the group's score in the index (its activity as the index knows it)
-- Reply: {1, activity} kept (the caller re-scores the index), {0} removed now,
--        {-1} no such group (already removed: the caller drops the index entry).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end
local now = tonumber(ARGV[1])
-- A group from before retention has no `la`: the index entry made for it when the
-- index was built says since when it counts.
local la = tonumber(redis.call('HGET', KEYS[1], 'la') or '')
if la == nil then
  la = tonumber(ARGV[4]) or now
  redis.call('HSET', KEYS[1], 'la', string.format('%d', la))
end
-- A member online keeps the group active.
if redis.call('HLEN', KEYS[3]) > 0 then
  if now > la then
    redis.call('HSET', KEYS[1], 'la', ARGV[1])
    la = now
  end
  return {1, la}
end
if now - la < tonumber(ARGV[2]) then
  return {1, la}
end
local prefix = ARGV[3]
for _, k in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if string.sub(k, 1, #prefix) == prefix then
    redis.call('DEL', k)
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return {0}
