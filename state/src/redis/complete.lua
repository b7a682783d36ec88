-- The end of an attempt: release the lease, reconcile token windows with the
-- real usage, and record the outcome. Mirrors MemoryStore::complete.
--
-- KEYS[1]  the namespace's lease counter (routing only)
-- ARGV     prefix, now_ms, lease_id, account, model, project, fingerprint,
--          outcome (ok | rl | blk | fail | cancel), duration_ms (ok: rest
--          for an exhausted budget, rl: cooldown, blk: recheck), tokens_used
--          (-1 = unknown), reserved, has_tpm, has_daily, session_key,
--          session_ttl_ms, breaker_failures, breaker_open_ms
-- Cooldown changes are published on <prefix>events as
-- "<key>|<until_ms>|<fingerprint>" (until 0 = cleared), feeding every
-- replica's cache of accounts known to be cold.

local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local lease = ARGV[3]
local account, model, project, fp = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local outcome = ARGV[8]
local dur = tonumber(ARGV[9])
local tokens = tonumber(ARGV[10])
local reserved = tonumber(ARGV[11])
local has_tpm, has_daily = ARGV[12] == '1', ARGV[13] == '1'
local session_key, session_ttl = ARGV[14], tonumber(ARGV[15])
local breaker_failures, breaker_open = tonumber(ARGV[16]), tonumber(ARGV[17])
local WINDOW, DAY = 60000, 86400000

local a = prefix .. 'acct:' .. account .. ':'
redis.call('ZREM', a .. 'leases', lease)
if tokens >= 0 then
  if has_tpm then
    local old = lease .. ':' .. reserved
    local score = redis.call('ZSCORE', a .. 'tokens', old)
    if score then
      redis.call('ZREM', a .. 'tokens', old)
      redis.call('ZADD', a .. 'tokens', score, lease .. ':' .. tokens)
    end
  end
  if has_daily then
    local dk = a .. 'day:' .. math.floor(now / DAY)
    local used = tonumber(redis.call('GET', dk) or '0')
    redis.call('SET', dk, math.max(used - reserved, 0) + tokens, 'PX', 2 * DAY)
  end
end

-- the class of the last failure, for the operator's health summary
local CLASSES = { rl = 'RateLimited', blk = 'Unauthorized', fail = 'UpstreamFailure' }
if CLASSES[outcome] then
  redis.call('HSET', a .. 'last', 'c', CLASSES[outcome], 't', now)
  redis.call('PEXPIRE', a .. 'last', DAY)
end

-- account-wide, (account, model), circuit breaker, (project, model)
local ACCOUNT, MODEL, BREAKER, PROJECT = 1, 2, 3, 4
local scopes = {
  prefix .. 'cd:a:' .. account,
  prefix .. 'cd:m:' .. account .. ':' .. model,
  prefix .. 'cd:b:' .. account,
}
if project ~= '' then scopes[PROJECT] = prefix .. 'cd:p:' .. project .. ':' .. model end

-- extends (never shortens) a cooldown; indexed per account for view()
local function set_cooldown(key, until_, probe_after, fingerprint)
  local cd = redis.call('HMGET', key, 'u', 'pa', 'fp')
  if cd[1] and tonumber(cd[1]) >= until_ and (cd[3] or '') == fingerprint then
    redis.call('HDEL', key, 'pl', 'pe')
    if probe_after then redis.call('HSET', key, 'pa', '1') end
    until_ = tonumber(cd[1])
  else
    redis.call('DEL', key)
    redis.call('HSET', key, 'u', until_, 'pa', probe_after and '1' or '0', 'fp', fingerprint)
  end
  redis.call('PEXPIRE', key, math.max(until_ - now, 0) + DAY)
  if key ~= scopes[PROJECT] then redis.call('ZADD', a .. 'cdi', until_, key) end
  redis.call('PUBLISH', prefix .. 'events', key .. '|' .. until_ .. '|' .. fingerprint)
end

if outcome == 'ok' then
  redis.call('DEL', a .. 'fails')
  for _, key in ipairs(scopes) do
    local cd = redis.call('HMGET', key, 'u', 'pl', 'pe')
    if cd[1] and tonumber(cd[1]) <= now
        and (not cd[2] or cd[2] == '' or cd[2] == lease or tonumber(cd[3]) <= now) then
      redis.call('DEL', key)
      redis.call('ZREM', a .. 'cdi', key)
      redis.call('PUBLISH', prefix .. 'events', key .. '|0|')
    end
  end
  if dur > 0 then set_cooldown(scopes[MODEL], now + dur, false, '') end
  if session_key ~= '' then
    redis.call('SET', prefix .. 'ss:' .. session_key, (now + session_ttl) .. '|' .. account,
      'PX', session_ttl + WINDOW)
  end
elseif outcome == 'rl' then
  set_cooldown(scopes[MODEL], now + dur, true, '')
  if scopes[PROJECT] then set_cooldown(scopes[PROJECT], now + dur, true, '') end
elseif outcome == 'blk' then
  set_cooldown(scopes[ACCOUNT], now + dur, true, fp)
else
  local breaker_probe = redis.call('HGET', scopes[BREAKER], 'pl') == lease
  for _, key in ipairs(scopes) do
    if redis.call('HGET', key, 'pl') == lease then redis.call('HDEL', key, 'pl', 'pe') end
  end
  if outcome == 'fail' then
    local fails = redis.call('INCR', a .. 'fails')
    redis.call('PEXPIRE', a .. 'fails', DAY)
    if breaker_probe or fails >= breaker_failures then
      redis.call('DEL', a .. 'fails')
      set_cooldown(scopes[BREAKER], now + breaker_open, true, '')
    end
  end
end
return 1
