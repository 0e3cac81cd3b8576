-- One chat message, atomically: next seq, append to the capped history stream,
-- publish to the group channel. One round trip whatever the group size.
-- KEYS[1] group hash (field `seq`), KEYS[2] history stream
-- ARGV[1] channel, ARGV[2] history limit, ARGV[3] from, ARGV[4] text,
-- ARGV[5] ts (ms), ARGV[6] origin, ARGV[7] the payload's JSON object without
-- its opening brace (the script prepends the type and seq)
-- Reply: the message's seq, or a NOGROUP error.
local cur = redis.call('HGET', KEYS[1], 'seq')
if not cur then
  return redis.error_reply('NOGROUP no such group')
end
local seq = string.format('%d', tonumber(cur) + 1)
-- XADD first: scripts do not roll back, so nothing is bumped if the append fails.
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0',
  'f', ARGV[3], 'x', ARGV[4], 'ts', ARGV[5], 'o', ARGV[6])
redis.call('HSET', KEYS[1], 'seq', seq)
redis.call('PUBLISH', ARGV[1], '{"t":"m","seq":' .. seq .. ',' .. ARGV[7])
return tonumber(seq)
