-- Remove the presence entries a dead node instance left in one group.
-- Entries are `<instance> <name>`; a member re-registered under another
-- instance since is left alone.
-- KEYS[1] group members hash
-- ARGV[1] dead instance ID
-- Reply: flat list of the removed entries, member ID then name.
local removed = {}
local prefix = ARGV[1] .. ' '
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local v = all[i + 1]
  if string.sub(v, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], all[i])
    removed[#removed + 1] = all[i]
    removed[#removed + 1] = string.sub(v, #prefix + 1)
  end
end
return removed
