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
-- Idempotent sends: KEYS[3] the group's sorted set of recent sends that carried a client id
-- (member "<join id> <client id>", score its seq), ARGV[8] this send's member ('' = no client id:
-- no check, nothing kept), ARGV[9] entries kept (the newest), ARGV[10] the set's TTL (ms),
-- ARGV[11] trim period: the set is cut to its newest ARGV[9] when seq is a multiple of it, so it
-- holds at most ARGV[9] + ARGV[11] - 1. One ZADD NX per send is both the check and the record;
-- the TTL is renewed only when less than 90 % of it is left (the group hash's `sx`: when the set
-- expires), so it never lapses while sends go on.
-- Stored as stream entry `<seq>-0` with fields `m` = ARGV[3], `n` = ARGV[7];
-- published as {"t":"m","seq":<seq>, ...the same fields}.
-- Past either bound the oldest entries go, but never the newest one.
-- Reply: the message's seq, or a NOGROUP error; for a send whose member is in the set already,
-- minus the seq it was stored as (nothing written, nothing published).
-- Commands per message once the history is full: HMGET, XADD, XLEN, XRANGE of the
-- one entry that goes, XTRIM, HSET, PUBLISH (the byte total rides on the HSET); a send with a
-- client id adds one ZADD (and, rarely, PEXPIRE and ZREMRANGEBYRANK).
-- One read for the existence check (seq), whether the byte total is kept (hb) and the dedupe
-- set's expiry (sx).
local meta = redis.call('HMGET', KEYS[1], 'seq', 'hb', 'sx')
local cur = meta[1]
if not cur then
  return redis.error_reply('NOGROUP no such group')
end
local seq = string.format('%d', tonumber(cur) + 1)
-- Record this send under its seq; if it is there already, this is a retry (same member, same
-- client id) within the window: the original's seq, negated, and nothing else is done.
local sent = ARGV[8]
if sent ~= '' and redis.call('ZADD', KEYS[3], 'NX', seq, sent) == 0 then
  return -tonumber(redis.call('ZSCORE', KEYS[3], sent))
end
-- Scripts do not roll back: if the append fails, the record above must go with it.
local function undo(reply)
  redis.call('ZREM', KEYS[3], sent)
  return reply
end
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

-- The byte total to store with seq (nil: none kept while the bound is off).
local hbKept = nil
-- XADD first: scripts do not roll back, so nothing is bumped if the append fails.
if maxBytes <= 0 then
  if sent == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'm', ARGV[3], 'n', ARGV[7])
  else
    local r = redis.pcall('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'm', ARGV[3], 'n', ARGV[7])
    if type(r) == 'table' and r.err then return undo(r) end
  end
  -- A running byte total would go stale while the bound is off: count again when it is back.
  if meta[2] then redis.call('HDEL', KEYS[1], 'hb') end
else
  -- The running total of text bytes kept; a history from before it (or from while the bound was
  -- off) is counted once, here.
  local counted = meta[2] ~= false and tonumber(meta[2]) ~= nil
  if sent == '' then
    redis.call('XADD', KEYS[2], seq .. '-0', 'm', ARGV[3], 'n', ARGV[7])
  else
    local r = redis.pcall('XADD', KEYS[2], seq .. '-0', 'm', ARGV[3], 'n', ARGV[7])
    if type(r) == 'table' and r.err then return undo(r) end
  end
  local hb
  if counted then
    hb = tonumber(meta[2]) + tonumber(ARGV[7])
  else
    hb = 0
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do hb = hb + entryBytes(e[2]) end
  end
  local len = redis.call('XLEN', KEYS[2])
  local over = len - limit
  if over > 0 or hb > maxBytes then
    -- Walk from the oldest, counting what must go; then one exact trim to the length that stays
    -- (XTRIM MAXLEN: Redis 5 and later).
    -- Reads take just the entries still to go by count (usually one), then 64 at a time for bytes.
    local dropped, freed, start = 0, 0, '-'
    local function enough()
      return len - dropped <= 1 or (dropped >= over and hb - freed <= maxBytes)
    end
    while not enough() do
      local batch = math.max(1, math.min(over - dropped, 64))
      if dropped >= over then batch = 64 end
      local rows = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', batch)
      for _, e in ipairs(rows) do
        if enough() then break end
        freed = freed + entryBytes(e[2])
        dropped = dropped + 1
      end
      if #rows < batch then break end
      -- The next possible ID after the last row (exclusive ranges need Redis 6.2).
      local ms, n = string.match(rows[#rows][1], '^(%d+)%-(%d+)$')
      start = ms .. '-' .. string.format('%d', tonumber(n) + 1)
    end
    if dropped > 0 then
      redis.call('XTRIM', KEYS[2], 'MAXLEN', len - dropped)
      hb = hb - freed
    end
  end
  hbKept = hb
end
local sxNew = nil
if sent ~= '' then
  local ttl = tonumber(ARGV[10])
  local now = tonumber(ARGV[5])
  local sx = tonumber(meta[3])
  if not sx or sx - now < ttl * 0.9 then
    redis.call('PEXPIRE', KEYS[3], ttl)
    sxNew = string.format('%d', now + ttl)
  end
end
if hbKept and sxNew then
  redis.call('HSET', KEYS[1], 'seq', seq, 'la', ARGV[5], 'hb', hbKept, 'sx', sxNew)
elseif hbKept then
  redis.call('HSET', KEYS[1], 'seq', seq, 'la', ARGV[5], 'hb', hbKept)
elseif sxNew then
  redis.call('HSET', KEYS[1], 'seq', seq, 'la', ARGV[5], 'sx', sxNew)
else
  redis.call('HSET', KEYS[1], 'seq', seq, 'la', ARGV[5])
end
-- Every ARGV[11] messages (with an id or not, so no pattern of sends escapes it): cut the set to
-- its newest ARGV[9].
if tonumber(seq) % tonumber(ARGV[11]) == 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[9]) - 1)
end

local pub = 'PUBLISH'
if ARGV[4] == 'SPUBLISH' then pub = 'SPUBLISH' end
redis.call(pub, ARGV[1], '{"t":"m","seq":' .. seq .. ',' .. string.sub(ARGV[3], 2))
return tonumber(seq)
