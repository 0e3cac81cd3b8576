-- One chat message, atomically: next seq, append to the capped history stream,
-- publish to the group channel. One round trip whatever the group size.
-- KEYS[1] group hash (field `seq`), KEYS[2] history stream
-- ARGV[1] channel, ARGV[2] history limit,
-- ARGV[3] the message as a JSON object {"from","text","ts","origin"} (no seq)
-- ARGV[4] PUBLISH (one Redis) or SPUBLISH (Redis Cluster: the channel shares
--         the group's hash tag, so it hashes to this script's slot)
-- Stored as stream entry `<seq>-0` with field `m` = ARGV[3]; published as
-- {"t":"m","seq":<seq>, ...the same fields}.
-- Reply: the message's seq, or a NOGROUP error.
local cur = redis.call('HGET', KEYS[1], 'seq')
if not cur then
  return redis.error_reply('NOGROUP no such group')
end
local seq = string.format('%d', tonumber(cur) + 1)
-- XADD first: scripts do not roll back, so nothing is bumped if the append fails.
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'm', ARGV[3])
redis.call('HSET', KEYS[1], 'seq', seq)
local pub = 'PUBLISH'
if ARGV[4] == 'SPUBLISH' then pub = 'SPUBLISH' end
redis.call(pub, ARGV[1], '{"t":"m","seq":' .. seq .. ',' .. string.sub(ARGV[3], 2))
return tonumber(seq)
