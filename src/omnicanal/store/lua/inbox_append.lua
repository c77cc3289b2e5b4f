-- Put a message in a customer's in-app inbox, once (a message id already there is left as it is), keeping the
-- newest `kept`: older ones go with their read and archived marks; the inbox's version counts the change.
-- Returns 1 if added, 0 if it was there.
local inbox_key = KEYS[1]
local order_key = KEYS[2]
local message_id = ARGV[1]
local message = ARGV[2]
local score = ARGV[3]  -- when it arrived, in milliseconds
local kept = tonumber(ARGV[4])

if redis.call('HEXISTS', inbox_key, message_id) == 1 then return 0 end
redis.call('HSET', inbox_key, message_id, message)
redis.call('ZADD', order_key, score, message_id)
redis.call('HINCRBY', inbox_key, INBOX_VERSION, 1)
local over = redis.call('ZCARD', order_key) - kept
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', order_key, 0, over - 1)) do
    redis.call('HDEL', inbox_key, old, old .. INBOX_READ_SUFFIX, old .. INBOX_ARCHIVED_SUFFIX)
  end
  redis.call('ZREMRANGEBYRANK', order_key, 0, over - 1)
end
return 1
