-- A message record written by the worker: the record replaces the stored one, its status history merges with
-- the stored history (see _write_message.lua), so a receipt recorded since the worker read it stays.
local messages_key = KEYS[1]
local message_id = ARGV[1]
local record = ARGV[2]
-- then the history: status, entry JSON, status, entry JSON...
local history = {unpack(ARGV, 3)}

write_message(messages_key, message_id, record, history)
return 1
