-- In-flight count, longest cooldown and account-wide block per account.
-- KEYS[1] routing only; ARGV: prefix, now_ms, account...
-- returns a flat list: in_flight, cooling_ms (0 = none), blocked (0/1) per account
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local a = prefix .. 'acct:' .. ARGV[i] .. ':'
  out[#out + 1] = redis.call('ZCOUNT', a .. 'leases', '(' .. now, '+inf')
  local top = redis.call('ZREVRANGEBYSCORE', a .. 'cdi', '+inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, 1)
  out[#out + 1] = top[2] and (tonumber(top[2]) - now) or 0
  local wide = redis.call('HGET', prefix .. 'cd:a:' .. ARGV[i], 'u')
  out[#out + 1] = (wide and tonumber(wide) > now) and 1 or 0
end
return out
