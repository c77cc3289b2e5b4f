-- Claim a message before its provider is called and, for a marketing send, count it against the customer's
-- frequency caps — atomically, so two sends racing for a cap's last slot cannot both win.
-- Returns {1, record, history} when the message was claimed before (a replay: never send again), {2, i} when the
-- i-th cap (1-based) forbids it (the capped history is kept, nothing counted), {0} when claimed (and counted).
-- A message claimed is also listed among the claims of work not yet committed (its commit takes it off).
local messages_key = KEYS[1]
local sends_key = KEYS[2]  -- members "message|channel|journey" (SEND_MEMBER_PATTERN), scored by time
local claims_key = KEYS[3]
local message_id = ARGV[1]
local record = ARGV[2]
local history = ARGV[3]  -- the history of a claimed message, as JSON
local capped_history = ARGV[4]  -- the history of a capped one ('' when no cap applies)
local now = tonumber(ARGV[5])
local member = ARGV[6]
local channel = ARGV[7]
local journey = ARGV[8]
-- ARGV[9]: how long sends are kept (the longest cap of the brand and of every journey: the record is shared, so
-- not this send's longest, which would drop what another journey's longer cap still counts), then triples (limit,
-- seconds, scope): none for a send no cap applies to.

local previous = redis.call('HGET', messages_key, message_id)
if previous then return {1, previous, redis.call('HGET', messages_key, message_id .. HISTORY_SUFFIX)} end
if #ARGV > 9 then
  local window = tonumber(ARGV[9])
  redis.call('ZREMRANGEBYSCORE', sends_key, '-inf', now - window)
  local recent = redis.call('ZRANGEBYSCORE', sends_key, '(' .. (now - window), '+inf', 'WITHSCORES')
  local cap = 0
  for i = 10, #ARGV, 3 do
    cap = cap + 1
    local limit, since, scope = tonumber(ARGV[i]), now - tonumber(ARGV[i + 1]), ARGV[i + 2]
    local count = 0
    for j = 1, #recent, 2 do
      if tonumber(recent[j + 1]) > since then
        local _, _, sent_on, sent_by = string.find(recent[j], SEND_MEMBER_PATTERN)
        if scope == 'customer' or (scope == 'channel' and sent_on == channel)
           or (scope == 'journey' and sent_by == journey) then
          count = count + 1
        end
      end
    end
    if count >= limit then
      redis.call('HSET', messages_key, message_id, record, message_id .. HISTORY_SUFFIX, capped_history)
      return {2, cap}
    end
  end
  redis.call('ZADD', sends_key, now, member)
end
redis.call('HSET', messages_key, message_id, record, message_id .. HISTORY_SUFFIX, history)
redis.call('SADD', claims_key, message_id)
return {0}
