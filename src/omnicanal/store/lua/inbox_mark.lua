-- Mark messages of a customer's inbox read or archived (`suffix`: INBOX_READ_SUFFIX or INBOX_ARCHIVED_SUFFIX) at
-- `at`, each once: a message marked before keeps its first time. Returns the ids newly marked (ids not in the
-- inbox are passed over). The inbox's version counts a change.
local inbox_key = KEYS[1]
local suffix = ARGV[1]
local at = ARGV[2]

local marked = {}
for i = 3, #ARGV do
  local message_id = ARGV[i]
  if redis.call('HEXISTS', inbox_key, message_id) == 1
     and redis.call('HSETNX', inbox_key, message_id .. suffix, at) == 1 then
    marked[#marked + 1] = message_id
  end
end
if #marked > 0 then redis.call('HINCRBY', inbox_key, INBOX_VERSION, 1) end
return marked
