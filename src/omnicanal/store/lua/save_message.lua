-- A message record written by the worker: the record replaces the stored one, its status history merges with
-- the stored history (see _append_statuses.lua), so a receipt recorded since the worker read it stays.
local messages_key = KEYS[1]
local message_id = ARGV[1]
local record = ARGV[2]
-- then the history: status, entry JSON, status, entry JSON...
local history = {unpack(ARGV, 3)}

redis.call('HSET', messages_key, message_id, record)
append_statuses(messages_key, message_id, history)
return 1
