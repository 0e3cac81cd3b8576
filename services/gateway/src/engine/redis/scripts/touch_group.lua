-- A join or resume: the group is active now (retention counts idleness from here).
-- KEYS[1] group hash
-- ARGV[1] now (ms)
-- Reply: 1 the group exists, 0 it does not (removed, or never was).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local la = tonumber(redis.call('HGET', KEYS[1], 'la') or '0') or 0
if tonumber(ARGV[1]) > la then
  redis.call('HSET', KEYS[1], 'la', ARGV[1])
end
return 1
