-- Admission in one round trip: check the client's own limits, pick the first
-- available candidate in strategy order, tier by tier, take capacity on it
-- (and on the client), and bind the session to it.
-- Mirrors MemoryStore::admit; the shared behaviour suite holds both to it.
-- Follows complete_one.lua: completions waiting on this replica ride in
-- front of the admission, so a request costs one call, and the replica's
-- admissions always see its own earlier attempts released.
--
-- KEYS     1 lease counter, 2 session binding (or the unused slot),
--          3-6 the client's leases, requests, tokens, day (or unused),
--          then 9 per candidate: cooldowns account-wide, (account, model),
--          breaker, (project, model) or unused; leases, requests, tokens,
--          day, cooldown index (keys.rs builds them), then the carried
--          completions' keys (complete_one.lua)
-- ARGV[1]  JSON: now, estimate, lease_ttl, least_busy, session_ttl (0 = no
--          session), window, busy, day, client {rpm, tpm, maxc, daily,
--          first} (absent = none), cands [{account, tier, project (has
--          one), rpm, tpm, maxc, daily, fp, excluded}]; a limit of 0 is none
-- ARGV[2]  JSON: carried completions, as complete_groups takes them
-- returns  {1, index (0-based), lease_id, probe, session_hit},
--          {0, retry_after_ms, rate_limited, failing, blocked, at_limit,
--          tried} (no account; why, counted per candidate), or
--          {2, retry_after_ms} (the client is over its own limits)

local a = cjson.decode(ARGV[1])
complete_groups(cjson.decode(ARGV[2]), 6 + #a.cands * 9)
local now, estimate, lease_ttl = a.now, a.estimate, a.lease_ttl
local WINDOW, BUSY, DAY = a.window, a.busy, a.day
local SESSION = KEYS[2]
local client = a.client
if client then
  client.keys = { leases = KEYS[3], requests = KEYS[4], tokens = KEYS[5], day = KEYS[6] }
end

local cands = a.cands
for i, c in ipairs(cands) do
  local b = 6 + (i - 1) * 9
  c.scopes = { KEYS[b + 1], KEYS[b + 2], KEYS[b + 3] }
  if c.project then c.scopes[4] = KEYS[b + 4] end
  c.keys = { leases = KEYS[b + 5], requests = KEYS[b + 6], tokens = KEYS[b + 7], day = KEYS[b + 8] }
  c.cdi = KEYS[b + 9]
end

local function drop_cooldown(key, c)
  redis.call('DEL', key)
  redis.call('ZREM', c.cdi, key)
end

-- How long until the windows `k` (an account's or a client's) admit one
-- more request within `lim`; 0 = now
local function window_wait(k, lim)
  redis.call('ZREMRANGEBYSCORE', k.leases, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', k.requests, '-inf', now - WINDOW)
  if lim.maxc > 0 and redis.call('ZCARD', k.leases) >= lim.maxc then return BUSY end
  if lim.rpm > 0 and redis.call('ZCARD', k.requests) >= lim.rpm then
    local oldest = redis.call('ZRANGE', k.requests, 0, 0, 'WITHSCORES')
    return math.max(tonumber(oldest[2]) + WINDOW - now, 1)
  end
  if lim.tpm > 0 then
    redis.call('ZREMRANGEBYSCORE', k.tokens, '-inf', now - WINDOW)
    local entries = redis.call('ZRANGE', k.tokens, 0, -1, 'WITHSCORES')
    local used = 0
    for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], ':(%d+)$')) end
    if used > 0 and used + estimate > lim.tpm then
      return math.max(tonumber(entries[2]) + WINDOW - now, 1)
    end
  end
  if lim.daily > 0 then
    local used = tonumber(redis.call('GET', k.day) or '0')
    if used > 0 and used + estimate > lim.daily then return DAY - now % DAY end
  end
  return 0
end

-- Takes capacity in the windows `k` for lease `id`; a request is counted
-- when `count`, token records are kept when limited or when `all`
local function window_take(k, lim, id, count, all)
  redis.call('ZADD', k.leases, now + lease_ttl, id)
  redis.call('PEXPIRE', k.leases, lease_ttl + WINDOW)
  if count then
    redis.call('ZADD', k.requests, now, id)
    redis.call('PEXPIRE', k.requests, 2 * WINDOW)
  end
  if all or lim.tpm > 0 then
    redis.call('ZADD', k.tokens, now, id .. ':' .. string.format('%d', estimate))
    redis.call('PEXPIRE', k.tokens, 2 * WINDOW)
  end
  if all or lim.daily > 0 then
    redis.call('INCRBY', k.day, estimate)
    redis.call('PEXPIRE', k.day, 2 * DAY)
  end
end

-- what holds a candidate out, by cooldown scope (account-wide, model,
-- breaker, project)
local SCOPE_CAUSE = { 'blocked', 'rate_limited', 'failing', 'rate_limited' }

-- true, probe_keys  or  false, wait_ms, cause
local function check(c)
  local wait = 0
  local cause = 'at_limit'
  local probes = {}
  for s, key in ipairs(c.scopes) do
    local cd = redis.call('HMGET', key, 'u', 'pa', 'fp', 'pl', 'pe')
    if cd[1] then
      local until_ = tonumber(cd[1])
      local left = 0
      if cd[3] and cd[3] ~= '' and cd[3] ~= c.fp then
        drop_cooldown(key, c) -- the credential changed: the block no longer applies
      elseif now < until_ then
        left = until_ - now
      elseif cd[2] == '1' then
        if cd[4] and cd[4] ~= '' and tonumber(cd[5]) > now then
          left = BUSY
        else
          probes[#probes + 1] = key
        end
      else
        drop_cooldown(key, c)
      end
      if left > wait then wait, cause = left, SCOPE_CAUSE[s] end
    end
  end
  if wait > 0 then return false, wait, cause end
  wait = window_wait(c.keys, c)
  if wait > 0 then return false, wait, 'at_limit' end
  return true, probes
end

local function take(c, probes)
  local id = redis.call('INCR', KEYS[1])
  window_take(c.keys, c, id, true, false)
  for _, key in ipairs(probes) do
    redis.call('HSET', key, 'pl', id, 'pe', now + lease_ttl)
  end
  return id
end

if client and client.first then
  local wait = window_wait(client.keys, client)
  if wait > 0 then return { 2, wait } end
end

local bound = nil
if a.session_ttl > 0 then
  local v = redis.call('GET', SESSION)
  if v then
    local exp, account = string.match(v, '^(%d+)|(.*)$')
    if exp and tonumber(exp) > now then bound = account else redis.call('DEL', SESSION) end
  end
end

local n = #cands
local earliest = nil
local why = { rate_limited = 0, failing = 0, blocked = 0, at_limit = 0, tried = 0 }
local i = 1
while i <= n do
  local tier = cands[i].tier
  local j = i
  while j <= n and cands[j].tier == tier do j = j + 1 end
  local avail = {}
  -- in plan order the first available candidate is the pick unless a
  -- session or least-busy may prefer another: stop there
  local first_wins = (not a.least_busy) and bound == nil
  for k = i, j - 1 do
    local ok, r, cause = check(cands[k])
    if ok and cands[k].excluded then
      earliest = math.min(earliest or BUSY, BUSY)
      why.tried = why.tried + 1
    elseif ok then
      avail[#avail + 1] = { idx = k, probes = r }
      if first_wins then break end
    else
      earliest = math.min(earliest or r, r)
      why[cause] = why[cause] + 1
    end
  end
  if #avail > 0 then
    if a.least_busy then
      for _, e in ipairs(avail) do e.busy = redis.call('ZCARD', cands[e.idx].keys.leases) end
      for x = 2, #avail do -- stable insertion sort by requests in flight
        local e = avail[x]
        local y = x - 1
        while y >= 1 and avail[y].busy > e.busy do
          avail[y + 1] = avail[y]
          y = y - 1
        end
        avail[y + 1] = e
      end
    end
    local pick = 1
    if bound then
      for x, e in ipairs(avail) do
        if cands[e.idx].account == bound then pick = x break end
      end
    end
    local e = avail[pick]
    local c = cands[e.idx]
    local id = take(c, e.probes)
    if client then window_take(client.keys, client, id, client.first, true) end
    -- bind (or slide) the session to the account taking it now: the next
    -- turn cannot race a later write, and a failover rebinds on the next attempt
    if a.session_ttl > 0 then
      redis.call('SET', SESSION, (now + a.session_ttl) .. '|' .. c.account, 'PX', a.session_ttl + WINDOW)
    end
    local hit = (bound ~= nil and c.account == bound) and 1 or 0
    return { 1, e.idx - 1, id, #e.probes > 0 and 1 or 0, hit }
  end
  i = j
end
return { 0, math.max(earliest or BUSY, 1), why.rate_limited, why.failing, why.blocked,
  why.at_limit, why.tried }
