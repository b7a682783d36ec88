-- What each named client used, for a proxy's /metrics and the operator's
-- LlmClient status.
-- KEYS     1 routing only, then 4 per client: leases, requests, tokens, day
-- ARGV     now_ms, window_ms
-- returns a flat list, four per client: requests in the last minute, tokens
-- in the last minute, tokens today, requests in flight
local now, WINDOW = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for b = 2, #KEYS, 4 do
  out[#out + 1] = redis.call('ZCOUNT', KEYS[b + 1], '(' .. (now - WINDOW), '+inf')
  local tokens = 0
  for _, e in ipairs(redis.call('ZRANGEBYSCORE', KEYS[b + 2], '(' .. (now - WINDOW), '+inf')) do
    tokens = tokens + tonumber(string.match(e, ':(%d+)$'))
  end
  out[#out + 1] = tokens
  out[#out + 1] = tonumber(redis.call('GET', KEYS[b + 3]) or '0')
  out[#out + 1] = redis.call('ZCOUNT', KEYS[b], '(' .. now, '+inf')
end
return out
