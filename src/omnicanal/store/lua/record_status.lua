-- A provider's receipt: the status is appended to the message's history unless the history holds it already.
-- Returns nil for a message the customer does not have, else {record, status history} as stored afterwards.
local messages_key = KEYS[1]
local message_id = ARGV[1]
local status = ARGV[2]
local entry = ARGV[3]  -- {"status", "at", "error_code"?} as JSON

local record = redis.call('HGET', messages_key, message_id)
if not record then return nil end
write_message(messages_key, message_id, nil, {status, entry})
return {record, redis.call('HGET', messages_key, message_id .. HISTORY_SUFFIX)}
