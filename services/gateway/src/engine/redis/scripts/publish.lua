-- One chat message, atomically: next seq, append to the bounded history stream,
-- mark the group active, publish to the group channel. One round trip whatever
-- the group size.
-- KEYS[1] group hash (fields `seq`, `la`, `hb`), KEYS[2] history stream
-- ARGV[1] channel, ARGV[2] history limit (entries),
-- ARGV[3] the message as a JSON object {"from","text","ts","origin"} (no seq)
-- ARGV[4] PUBLISH (one Redis) or SPUBLISH (Redis Cluster: the channel shares
--         the group's hash tag, so it hashes to this script's slot)
-- ARGV[5] now (ms): the group's last activity
-- ARGV[6] history bound in text bytes (0 = count only)
-- ARGV[7] this message's text in UTF-8 bytes
-- Stored as stream entry `<seq>-0` with fields `m` = ARGV[3], `n` = ARGV[7];
-- published as {"t":"m","seq":<seq>, ...the same fields}.
-- Past either bound the oldest entries go, but never the newest one.
-- Reply: the message's seq, or a NOGROUP error.
local cur = redis.call('HGET', KEYS[1], 'seq')
if not cur then
  return redis.error_reply('NOGROUP no such group')
end
local seq = string.format('%d', tonumber(cur) + 1)
local limit = tonumber(ARGV[2])
local maxBytes = tonumber(ARGV[6])

-- An entry's text bytes: its `n` field, or (entries from before the byte bound) its text's length.
local function entryBytes(fields)
  local body
  for i = 1, #fields, 2 do
    if fields[i] == 'n' then
      local n = tonumber(fields[i + 1])
      if n then return n end
    elseif fields[i] == 'm' then
      body = fields[i + 1]
    end
  end
  if body then
    local ok, v = pcall(cjson.decode, body)
    if ok and type(v) == 'table' and type(v.text) == 'string' then return #v.text end
  end
  return 0
end

-- XADD first: scripts do not roll back, so nothing is bumped if the append fails.
if maxBytes <= 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'm', ARGV[3], 'n', ARGV[7])
  -- A running byte total would go stale while the bound is off: count again when it is back.
  redis.call('HDEL', KEYS[1], 'hb')
else
  -- The running total of text bytes kept; a history from before it (or from while the bound was
  -- off) is counted once, here.
  local counted = redis.call('HEXISTS', KEYS[1], 'hb') == 1
  redis.call('XADD', KEYS[2], seq .. '-0', 'm', ARGV[3], 'n', ARGV[7])
  local add = tonumber(ARGV[7])
  if not counted then
    add = 0
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do add = add + entryBytes(e[2]) end
  end
  local hb = redis.call('HINCRBY', KEYS[1], 'hb', add)
  local len = redis.call('XLEN', KEYS[2])
  local over = len - limit
  if over > 0 or hb > maxBytes then
    -- Walk from the oldest, counting what must go; then one exact trim to the length that stays
    -- (XTRIM MAXLEN: Redis 5 and later).
    local dropped, freed, done, start = 0, 0, false, '-'
    while not done do
      local rows = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 64)
      for _, e in ipairs(rows) do
        if len - dropped <= 1 or (dropped >= over and hb - freed <= maxBytes) then
          done = true
          break
        end
        freed = freed + entryBytes(e[2])
        dropped = dropped + 1
      end
      if not done then
        if #rows < 64 then break end
        -- The next possible ID after the last row (exclusive ranges need Redis 6.2).
        local ms, n = string.match(rows[#rows][1], '^(%d+)%-(%d+)$')
        start = ms .. '-' .. string.format('%d', tonumber(n) + 1)
      end
    end
    if dropped > 0 then
      redis.call('XTRIM', KEYS[2], 'MAXLEN', len - dropped)
      redis.call('HINCRBY', KEYS[1], 'hb', -freed)
    end
  end
end
redis.call('HSET', KEYS[1], 'seq', seq, 'la', ARGV[5])

local pub = 'PUBLISH'
if ARGV[4] == 'SPUBLISH' then pub = 'SPUBLISH' end
redis.call(pub, ARGV[1], '{"t":"m","seq":' .. seq .. ',' .. string.sub(ARGV[3], 2))
return tonumber(seq)
