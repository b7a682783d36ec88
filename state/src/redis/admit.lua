-- Admission in one round trip: pick the first available candidate in
-- strategy order, tier by tier, take capacity on it, and bind the session to it.
-- Mirrors MemoryStore::admit; the shared behaviour suite holds both to it.
--
-- KEYS[1]  the namespace's lease counter; its {ns} hash tag routes the call
-- ARGV     prefix, now_ms, estimate, lease_ttl_ms, least_busy, session_key,
--          session_ttl_ms, n, then 10 fields per candidate: account, tier,
--          model, project, rpm, tpm, max_concurrency, daily (0 = no limit),
--          fingerprint, excluded
-- returns  {1, index (0-based), lease_id, probe, session_hit} or {0, retry_after_ms}

local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local estimate = tonumber(ARGV[3])
local lease_ttl = tonumber(ARGV[4])
local least_busy = ARGV[5] == '1'
local session_key = ARGV[6]
local session_ttl = tonumber(ARGV[7])
local n = tonumber(ARGV[8])
local WINDOW, BUSY, DAY = 60000, 1000, 86400000

local cands = {}
for i = 1, n do
  local b = 8 + (i - 1) * 10
  cands[i] = {
    account = ARGV[b + 1], tier = tonumber(ARGV[b + 2]), model = ARGV[b + 3], project = ARGV[b + 4],
    rpm = tonumber(ARGV[b + 5]), tpm = tonumber(ARGV[b + 6]), maxc = tonumber(ARGV[b + 7]),
    daily = tonumber(ARGV[b + 8]), fp = ARGV[b + 9], excluded = ARGV[b + 10] == '1',
  }
end

local function acct(c) return prefix .. 'acct:' .. c.account .. ':' end

-- account-wide, (account, model), circuit breaker, (project, model)
local function scopes(c)
  local s = {
    prefix .. 'cd:a:' .. c.account,
    prefix .. 'cd:m:' .. c.account .. ':' .. c.model,
    prefix .. 'cd:b:' .. c.account,
  }
  if c.project ~= '' then s[4] = prefix .. 'cd:p:' .. c.project .. ':' .. c.model end
  return s
end

local function drop_cooldown(key, c)
  redis.call('DEL', key)
  redis.call('ZREM', acct(c) .. 'cdi', key)
end

-- true, probe_keys  or  false, wait_ms
local function check(c)
  local wait = 0
  local probes = {}
  for _, key in ipairs(scopes(c)) do
    local cd = redis.call('HMGET', key, 'u', 'pa', 'fp', 'pl', 'pe')
    if cd[1] then
      local until_ = tonumber(cd[1])
      if cd[3] and cd[3] ~= '' and cd[3] ~= c.fp then
        drop_cooldown(key, c) -- the credential changed: the block no longer applies
      elseif now < until_ then
        wait = math.max(wait, until_ - now)
      elseif cd[2] == '1' then
        if cd[4] and cd[4] ~= '' and tonumber(cd[5]) > now then
          wait = math.max(wait, BUSY)
        else
          probes[#probes + 1] = key
        end
      else
        drop_cooldown(key, c)
      end
    end
  end
  if wait > 0 then return false, wait end

  local a = acct(c)
  redis.call('ZREMRANGEBYSCORE', a .. 'leases', '-inf', now)
  redis.call('ZREMRANGEBYSCORE', a .. 'requests', '-inf', now - WINDOW)
  if c.maxc > 0 and redis.call('ZCARD', a .. 'leases') >= c.maxc then return false, BUSY end
  if c.rpm > 0 and redis.call('ZCARD', a .. 'requests') >= c.rpm then
    local oldest = redis.call('ZRANGE', a .. 'requests', 0, 0, 'WITHSCORES')
    return false, math.max(tonumber(oldest[2]) + WINDOW - now, 1)
  end
  if c.tpm > 0 then
    redis.call('ZREMRANGEBYSCORE', a .. 'tokens', '-inf', now - WINDOW)
    local entries = redis.call('ZRANGE', a .. 'tokens', 0, -1, 'WITHSCORES')
    local used = 0
    for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], ':(%d+)$')) end
    if used > 0 and used + estimate > c.tpm then
      return false, math.max(tonumber(entries[2]) + WINDOW - now, 1)
    end
  end
  if c.daily > 0 then
    local used = tonumber(redis.call('GET', a .. 'day:' .. math.floor(now / DAY)) or '0')
    if used > 0 and used + estimate > c.daily then return false, DAY - now % DAY end
  end
  return true, probes
end

local function take(c, probes)
  local id = redis.call('INCR', KEYS[1])
  local a = acct(c)
  redis.call('ZADD', a .. 'leases', now + lease_ttl, id)
  redis.call('PEXPIRE', a .. 'leases', lease_ttl + WINDOW)
  redis.call('ZADD', a .. 'requests', now, id)
  redis.call('PEXPIRE', a .. 'requests', 2 * WINDOW)
  if c.tpm > 0 then
    redis.call('ZADD', a .. 'tokens', now, id .. ':' .. estimate)
    redis.call('PEXPIRE', a .. 'tokens', 2 * WINDOW)
  end
  if c.daily > 0 then
    local dk = a .. 'day:' .. math.floor(now / DAY)
    redis.call('INCRBY', dk, estimate)
    redis.call('PEXPIRE', dk, 2 * DAY)
  end
  for _, key in ipairs(probes) do
    redis.call('HSET', key, 'pl', id, 'pe', now + lease_ttl)
  end
  return id
end

local bound = nil
local skey = prefix .. 'ss:' .. session_key
if session_key ~= '' then
  local v = redis.call('GET', skey)
  if v then
    local exp, account = string.match(v, '^(%d+)|(.*)$')
    if exp and tonumber(exp) > now then bound = account else redis.call('DEL', skey) end
  end
end

local earliest = nil
local i = 1
while i <= n do
  local tier = cands[i].tier
  local j = i
  while j <= n and cands[j].tier == tier do j = j + 1 end
  local avail = {}
  for k = i, j - 1 do
    local ok, r = check(cands[k])
    if ok and cands[k].excluded then
      earliest = math.min(earliest or BUSY, BUSY)
    elseif ok then
      avail[#avail + 1] = { idx = k, probes = r }
    else
      earliest = math.min(earliest or r, r)
    end
  end
  if #avail > 0 then
    if least_busy then
      for _, e in ipairs(avail) do e.busy = redis.call('ZCARD', acct(cands[e.idx]) .. 'leases') end
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
    -- bind (or slide) the session to the account taking it now: the next
    -- turn cannot race a later write, and a failover rebinds on the next attempt
    if session_key ~= '' then
      redis.call('SET', skey, (now + session_ttl) .. '|' .. c.account, 'PX', session_ttl + WINDOW)
    end
    local hit = (bound ~= nil and c.account == bound) and 1 or 0
    return { 1, e.idx - 1, id, #e.probes > 0 and 1 or 0, hit }
  end
  i = j
end
return { 0, math.max(earliest or BUSY, 1) }
