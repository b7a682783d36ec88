-- Clears an account's cooldowns (account-wide, per model) and circuit
-- breaker state, and tells every replica's cold cache.
-- KEYS     1 cooldown index, 2 failures, 3 account-wide cooldown, 4 breaker,
--          then the other cooldowns the index listed when it was read
--          (a cooldown set between that read and this call is kept)
-- ARGV     the events channel
-- returns the number of cooldowns cleared
local cleared = 0
for i = 3, #KEYS do
  cleared = cleared + redis.call('DEL', KEYS[i])
  redis.call('PUBLISH', ARGV[1], KEYS[i] .. '|0|')
end
redis.call('DEL', KEYS[1], KEYS[2])
return cleared
