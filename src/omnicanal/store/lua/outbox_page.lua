-- A page of the outbox, read at once: up to ARGV[2] records after position ARGV[1]. Positions number every record
-- the outbox was ever given, from 1, so they stay put as the oldest records are trimmed. Returns the position of
-- the first record returned, then the records.
local list_key = KEYS[1]
local count_key = KEYS[2]
local after = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])

local length = redis.call('LLEN', list_key)
local appended = math.max(tonumber(redis.call('GET', count_key) or 0), length)
local first = appended - length + 1  -- the position of the list's first record
local start = math.max(after + 1 - first, 0)
local records = redis.call('LRANGE', list_key, start, start + limit - 1)
table.insert(records, 1, first + start)
return records
