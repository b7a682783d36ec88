-- What the shared state says of each account: for a proxy's /metrics and
-- /readyz, and for the operator's health summary in status.
-- KEYS     1 routing only, then 5 per account: leases, cooldown index,
--          account-wide cooldown, last failure, requests
-- ARGV     now_ms, window_ms
-- returns a flat list, six per account: in_flight, cooling_until_ms of the
-- longest cooldown (0 = none), blocked account-wide (0/1), class of the
-- last failure ('' = none), its time in ms, requests in the last minute
local now, WINDOW = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for b = 2, #KEYS, 5 do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[b], '(' .. now, '+inf')
  local top = redis.call('ZREVRANGEBYSCORE', KEYS[b + 1], '+inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, 1)
  out[#out + 1] = top[2] and tonumber(top[2]) or 0
  local wide = redis.call('HGET', KEYS[b + 2], 'u')
  out[#out + 1] = (wide and tonumber(wide) > now) and 1 or 0
  local last = redis.call('HMGET', KEYS[b + 3], 'c', 't')
  out[#out + 1] = last[1] or ''
  out[#out + 1] = tonumber(last[2] or '0')
  out[#out + 1] = redis.call('ZCOUNT', KEYS[b + 4], '(' .. (now - WINDOW), '+inf')
end
return out
