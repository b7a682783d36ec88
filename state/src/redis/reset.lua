-- Clears an account's cooldowns (account-wide, per model) and circuit
-- breaker state, and tells every replica's cold cache.
-- KEYS[1] routing only; ARGV: prefix, account
-- returns the number of cooldowns cleared
local prefix, account = ARGV[1], ARGV[2]
local a = prefix .. 'acct:' .. account .. ':'
local keys = redis.call('ZRANGE', a .. 'cdi', 0, -1)
local wide = { prefix .. 'cd:a:' .. account, prefix .. 'cd:b:' .. account }
local seen = {}
for _, key in ipairs(keys) do seen[key] = true end
for _, key in ipairs(wide) do
  if not seen[key] and redis.call('EXISTS', key) == 1 then keys[#keys + 1] = key end
end
local cleared = 0
for _, key in ipairs(keys) do
  cleared = cleared + redis.call('DEL', key)
  redis.call('PUBLISH', prefix .. 'events', key .. '|0|')
end
redis.call('DEL', a .. 'cdi', a .. 'fails')
return cleared
