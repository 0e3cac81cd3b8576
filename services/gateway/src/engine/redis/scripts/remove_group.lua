-- The server API's DELETE: remove one group now, atomically in its own slot,
-- and tell every node subscribed to it. Unlike remove_idle.lua nothing is
-- checked: members online are closed by their nodes when the notice arrives.
-- KEYS[1] group hash, KEYS[2] history stream, KEYS[3] members hash,
-- KEYS[4] set of further keys the group owns (e.g. wrong-password counts per address),
-- KEYS[5] the group's dedupe set (idempotent sends)
-- ARGV[1] the group's key prefix, ARGV[2] channel,
-- ARGV[3] PUBLISH (one Redis) or SPUBLISH (Redis Cluster: the channel shares the group's slot)
-- Published: {"t":"c"} (closed). The ID counter is untouched: the ID is never reused.
-- Reply: 1 removed now, 0 no such group.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local prefix = ARGV[1]
for _, k in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if string.sub(k, 1, #prefix) == prefix then
    redis.call('DEL', k)
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local pub = 'PUBLISH'
if ARGV[3] == 'SPUBLISH' then pub = 'SPUBLISH' end
redis.call(pub, ARGV[2], '{"t":"c"}')
return 1
