-- The end of an attempt, as a function both scripts share: complete.lua
-- sends completions on their own, admit.lua carries the ones waiting on this
-- replica in front of its admission. Each releases the lease (the
-- account's and the client's), reconciles token windows with the real
-- usage, and records the outcome. Mirrors MemoryStore::complete.
--
-- K        1 session binding (or unused), 2-7 the account's leases,
--          tokens, day, cooldown index, fails, last; 8-11 cooldowns
--          account-wide, (account, model), breaker, (project, model) or
--          unused; 12-14 the client's leases, tokens, day (or unused)
-- a        now, lease, account, fp, outcome (ok | rl | blk | fail |
--          cancel), dur (ok: rest for an exhausted budget, rl: cooldown,
--          blk: recheck), tokens (-1 = unknown), reserved, has_tpm,
--          has_daily, session_ttl (0 = no session), project (has one),
--          client (has one), client_used, breaker_failures, breaker_open,
--          window, day, events (the pub/sub channel)
-- Cooldown changes are published on `events` as
-- "<key>|<until_ms>|<fingerprint>" (until 0 = cleared), feeding every
-- replica's cache of accounts known to be cold.
local COMPLETION_KEYS = 14

local function complete_one(K, a)
  local now, lease, outcome, dur = a.now, string.format('%d', a.lease), a.outcome, a.dur
  local WINDOW, DAY = a.window, a.day
  local CDI, FAILS, LAST = K[5], K[6], K[7]

  -- replaces a lease's token reservation with what it used
  local function settle(leases, tokens, day, reserved, used, track_tokens, track_day)
    redis.call('ZREM', leases, lease)
    if used < 0 then return end
    if track_tokens then
      local old = lease .. ':' .. string.format('%d', reserved)
      local score = redis.call('ZSCORE', tokens, old)
      if score then
        redis.call('ZREM', tokens, old)
        redis.call('ZADD', tokens, score, lease .. ':' .. string.format('%d', used))
      end
    end
    if track_day then
      local before = tonumber(redis.call('GET', day) or '0')
      redis.call('SET', day, math.max(before - reserved, 0) + used, 'PX', 2 * DAY)
    end
  end

  settle(K[2], K[3], K[4], a.reserved, a.tokens, a.has_tpm, a.has_daily)
  if a.client then
    settle(K[12], K[13], K[14], a.reserved, a.client_used, true, true)
  end

  -- the class of the last failure, for the operator's health summary
  local CLASSES = { rl = 'RateLimited', blk = 'Unauthorized', fail = 'UpstreamFailure' }
  if CLASSES[outcome] then
    redis.call('HSET', LAST, 'c', CLASSES[outcome], 't', now)
    redis.call('PEXPIRE', LAST, DAY)
  end

  -- account-wide, (account, model), circuit breaker, (project, model)
  local ACCOUNT, MODEL, BREAKER, PROJECT = 1, 2, 3, 4
  local scopes = { K[8], K[9], K[10] }
  if a.project then scopes[PROJECT] = K[11] end

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
    if key ~= scopes[PROJECT] then redis.call('ZADD', CDI, until_, key) end
    redis.call('PUBLISH', a.events, key .. '|' .. string.format('%d', until_) .. '|' .. fingerprint)
  end

  if outcome == 'ok' then
    redis.call('DEL', FAILS)
    for _, key in ipairs(scopes) do
      local cd = redis.call('HMGET', key, 'u', 'pl', 'pe')
      if cd[1] and tonumber(cd[1]) <= now
          and (not cd[2] or cd[2] == '' or cd[2] == lease or tonumber(cd[3]) <= now) then
        redis.call('DEL', key)
        redis.call('ZREM', CDI, key)
        redis.call('PUBLISH', a.events, key .. '|0|')
      end
    end
    if dur > 0 then set_cooldown(scopes[MODEL], now + dur, false, '') end
    if a.session_ttl > 0 then
      redis.call('SET', K[1], (now + a.session_ttl) .. '|' .. a.account, 'PX', a.session_ttl + WINDOW)
    end
  elseif outcome == 'rl' then
    set_cooldown(scopes[MODEL], now + dur, true, '')
    if scopes[PROJECT] then set_cooldown(scopes[PROJECT], now + dur, true, '') end
  elseif outcome == 'blk' then
    set_cooldown(scopes[ACCOUNT], now + dur, true, a.fp)
  else
    local breaker_probe = redis.call('HGET', scopes[BREAKER], 'pl') == lease
    for _, key in ipairs(scopes) do
      if redis.call('HGET', key, 'pl') == lease then redis.call('HDEL', key, 'pl', 'pe') end
    end
    if outcome == 'fail' then
      local fails = redis.call('INCR', FAILS)
      redis.call('PEXPIRE', FAILS, DAY)
      if breaker_probe or fails >= a.breaker_failures then
        redis.call('DEL', FAILS)
        set_cooldown(scopes[BREAKER], now + a.breaker_open, true, '')
      end
    end
  end
end

-- Applies groups of completions whose keys follow KEYS[base]: per group
-- its marker key, then COMPLETION_KEYS per completion. A group whose
-- marker is already set was applied by an earlier call whose answer was
-- lost; it is skipped, so a group sent again counts once.
-- groups   [{ttl (the marker's, ms), items [a, ...]}]
local function complete_groups(groups, base)
  local k = base
  for _, g in ipairs(groups) do
    local fresh = redis.call('SET', KEYS[k + 1], '1', 'NX', 'PX', g.ttl)
    k = k + 1
    for _, item in ipairs(g.items) do
      if fresh then
        local K = {}
        for x = 1, COMPLETION_KEYS do K[x] = KEYS[k + x] end
        complete_one(K, item)
      end
      k = k + COMPLETION_KEYS
    end
  end
end
