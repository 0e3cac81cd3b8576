-- A group from before epochs gets one on first use; every node agrees on the
-- first one given. A group removed meanwhile is left alone (no half key is made).
-- KEYS[1] group hash
-- ARGV[1] a new epoch
-- Reply: the group's epoch, or nil when the group does not exist.
if redis.call('HEXISTS', KEYS[1], 'h') == 0 then
  return false
end
redis.call('HSETNX', KEYS[1], 'ep', ARGV[1])
return redis.call('HGET', KEYS[1], 'ep')
