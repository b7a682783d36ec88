-- What the shared state says of each account: for a proxy's /metrics and
-- /readyz, and for the operator's health summary in status.
-- KEYS[1] routing only; ARGV: prefix, now_ms, account...
-- returns a flat list, six per account: in_flight, cooling_until_ms of the
-- longest cooldown (0 = none), blocked account-wide (0/1), class of the
-- last failure ('' = none), its time in ms, requests in the last minute
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local WINDOW = 60000
local out = {}
for i = 3, #ARGV do
  local a = prefix .. 'acct:' .. ARGV[i] .. ':'
  out[#out + 1] = redis.call('ZCOUNT', a .. 'leases', '(' .. now, '+inf')
  local top = redis.call('ZREVRANGEBYSCORE', a .. 'cdi', '+inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, 1)
  out[#out + 1] = top[2] and tonumber(top[2]) or 0
  local wide = redis.call('HGET', prefix .. 'cd:a:' .. ARGV[i], 'u')
  out[#out + 1] = (wide and tonumber(wide) > now) and 1 or 0
  local last = redis.call('HMGET', a .. 'last', 'c', 't')
  out[#out + 1] = last[1] or ''
  out[#out + 1] = tonumber(last[2] or '0')
  out[#out + 1] = redis.call('ZCOUNT', a .. 'requests', '(' .. (now - WINDOW), '+inf')
end
return out
