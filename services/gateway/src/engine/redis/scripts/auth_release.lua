-- Take back one counted attempt that never got its check (the queue was full,
-- the client left, the check failed): it was no wrong password. Never below zero.
-- KEYS[1] failures hash of (group, address)
-- Reply: failures counted after.
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n <= 0 then
  return 0
end
return redis.call('HINCRBY', KEYS[1], 'n', -1)
