-- One chat message, atomically: next seq, append to the bounded history stream,
-- mark the group active, publish to the group channel. One round trip whatever
-- the group size.
-- KEYS[1] group hash (fields `seq`, `la`, `hb`, `lo`, `sx`), KEYS[2] history stream
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
-- Commands per message once the history is full: HMGET, XRANGE of the one entry that goes,
-- XADD (which drops it), HSET, PUBLISH (the byte total and the oldest seq kept ride on the HSET);
-- a send with a client id adds one ZADD (and, rarely, PEXPIRE and ZREMRANGEBYRANK). Past the byte
-- bound, the walk below adds its reads and one XTRIM.
-- One read for the existence check (seq), the byte total (hb), the dedupe set's expiry (sx) and
-- the oldest seq kept (lo).
local meta = redis.call('HMGET', KEYS[1], 'seq', 'hb', 'sx', 'lo')
local cur = meta[1]
if not cur then
  return redis.error_reply('NOGROUP no such group')
end
local seq = string.format('%d', tonumber(cur) + 1)
local sent = ARGV[8]
-- The first write, after every read that decides how to trim. Scripts do not roll back, so
-- nothing is bumped before it, and a read that fails leaves nothing behind.
-- A keyed send is recorded under its seq first (ZADD NX): if it is there already, this is a retry
-- (same member, same client id) within the window, answered with the original's seq, negated,
-- and nothing is written. If the append then fails, the record is taken back.
-- Returns what the script must reply now (a retry's seq, an error), or nil.
local function append(...)
  if sent == '' then
    redis.call('XADD', KEYS[2], ...)
    return nil
  end
  if redis.call('ZADD', KEYS[3], 'NX', seq, sent) == 0 then
    return -tonumber(redis.call('ZSCORE', KEYS[3], sent))
  end
  local r = redis.pcall('XADD', KEYS[2], ...)
  if type(r) == 'table' and r.err then
    redis.call('ZREM', KEYS[3], sent)
    return r
  end
  return nil
end
local limit = tonumber(ARGV[2])
local maxBytes = tonumber(ARGV[6])
local id = seq .. '-0'

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

-- What the HSET below writes besides seq and la.
local hbKept, loKept = nil, nil
if maxBytes <= 0 then
  local reply = append('MAXLEN', ARGV[2], id, 'm', ARGV[3], 'n', ARGV[7])
  if reply then return reply end
  -- The running byte total and the oldest seq would go stale while the bound is off: both are
  -- found again when it is back.
  if meta[2] or meta[4] then redis.call('HDEL', KEYS[1], 'hb', 'lo') end
else
  -- The running total of text bytes kept, this message's included; a history from before it (or
  -- from while the bound was off) is counted once, here.
  local function counted()
    local total = 0
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do total = total + entryBytes(e[2]) end
    return total
  end
  local hb
  if meta[2] ~= false and tonumber(meta[2]) ~= nil then hb = tonumber(meta[2]) else hb = counted() end
  hb = hb + tonumber(ARGV[7])
  -- The entries before this one. Entry IDs are `<seq>-0`, one per seq, and only the oldest ever
  -- go, so the kept ones are lo..cur, `lo` being the oldest seq kept (in the group hash); without
  -- it (a history from before `lo`, or from while the bound was off) they are counted once.
  local lo = tonumber(meta[4])
  local before
  if lo then before = tonumber(cur) - lo + 1 else before = redis.call('XLEN', KEYS[2]) end
  -- Whether `before` is known to match the stream (counted, or `lo` seen as its first entry).
  local checked = not lo
  -- `lo` seen not to be the stream's first entry.
  local stale = false
  local over = before + 1 - limit
  -- The common case, once the history is full: the count bound takes the oldest entry (or a few,
  -- after HISTORY_LIMIT was lowered) and the rest fits the byte bound. Read what goes, then one
  -- XADD with an exact MAXLEN appends and drops it: no XLEN, no XTRIM.
  local fast = false
  if over <= 0 then
    fast = hb <= maxBytes
  else
    local rows = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', over)
    if #rows == over and (not lo or rows[1][1] == string.format('%d', lo) .. '-0') then
      checked = true
      local freed = 0
      for _, e in ipairs(rows) do freed = freed + entryBytes(e[2]) end
      if hb - freed <= maxBytes then
        fast = true
        hb = hb - freed
      end
    else
      stale = lo ~= nil
    end
  end
  -- About to trim by bytes (rare) on a count not yet checked: check it (XLEN is O(1)). A `lo` that
  -- does not match the stream (something else changed it, e.g. a node on the previous version of
  -- this script) means the byte total may be off too: count both.
  if not fast and not checked then
    local real = redis.call('XLEN', KEYS[2])
    if stale or real ~= before then
      before = real
      over = before + 1 - limit
      hb = counted() + tonumber(ARGV[7])
    end
  end
  local len
  if fast then
    local reply
    if over > 0 then
      reply = append('MAXLEN', ARGV[2], id, 'm', ARGV[3], 'n', ARGV[7])
      len = limit
    else
      reply = append(id, 'm', ARGV[3], 'n', ARGV[7])
      len = before + 1
    end
    if reply then return reply end
  else
    -- Past the byte bound: append, walk from the oldest counting what must go, then one exact
    -- trim to the length that stays (XTRIM MAXLEN: Redis 5 and later). Reads take the entries still
    -- to go by count first, then 64 at a time for bytes. Never the newest entry.
    local reply = append(id, 'm', ARGV[3], 'n', ARGV[7])
    if reply then return reply end
    len = before + 1
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
      len = len - dropped
    end
  end
  hbKept = hb
  loKept = string.format('%d', tonumber(seq) - len + 1)
end
local fields = { 'seq', seq, 'la', ARGV[5] }
if hbKept then
  fields[5] = 'hb'
  fields[6] = hbKept
  fields[7] = 'lo'
  fields[8] = loKept
end
-- The dedupe set lives ARGV[10] ms after the last send with an id: renewed once under 90 % is left.
if sent ~= '' then
  local ttl = tonumber(ARGV[10])
  local now = tonumber(ARGV[5])
  local sx = tonumber(meta[3])
  -- Also when `sx` lies further ahead than the TTL itself: a gateway whose clock runs ahead wrote it.
  if not sx or sx - now < ttl * 0.9 or sx - now > ttl then
    redis.call('PEXPIRE', KEYS[3], ttl)
    fields[#fields + 1] = 'sx'
    fields[#fields + 1] = string.format('%d', now + ttl)
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
-- Every ARGV[11] messages (with an id or not, so no pattern of sends escapes it): cut the set to
-- its newest ARGV[9].
if tonumber(seq) % tonumber(ARGV[11]) == 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[9]) - 1)
end

local pub = 'PUBLISH'
if ARGV[4] == 'SPUBLISH' then pub = 'SPUBLISH' end
redis.call(pub, ARGV[1], '{"t":"m","seq":' .. seq .. ',' .. string.sub(ARGV[3], 2))
return tonumber(seq)
