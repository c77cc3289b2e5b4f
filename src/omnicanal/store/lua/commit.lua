-- Everything one batch of work changes for one customer, atomically: one command to encode and parse instead of
-- a MULTI of eight. ARGV after the fixed ones: sections, each a count followed by its items: applied event ids
-- (id, score), timeline entries, instances to set (id, JSON), instances to delete (id), journey entries (journey,
-- when it began), attributes to set (name, JSON), attributes to delete (name), profile fields to set (name,
-- stored text), then messages, each: id, record,
-- number of history entries, then those entries (status, entry JSON); a message's history merges with what is
-- stored (see _write_message.lua), so a receipt recorded meanwhile stays; last, the claims settled (message ids).
local profile_key = KEYS[1]
local attrs_key = KEYS[2]
local entries_key = KEYS[3]
local timeline_key = KEYS[4]
local seen_key = KEYS[5]
local messages_key = KEYS[6]
local claims_key = KEYS[7]
-- created: a new customer (its creation is stamped); applied event ids scored before seen_since are forgotten;
-- applied_entry: the last work entry applied ('': none); read_entry: the last applied entry the worker's snapshot
-- read ('': none).
local now = ARGV[1]
local created = ARGV[2] == '1'
local seen_since = ARGV[3]
local timeline_limit = tonumber(ARGV[4])
local applied_entry = ARGV[5]
local read_entry = ARGV[6]

-- The fence: work is applied on what the snapshot read. If another worker committed this customer's work since
-- (this one stalled past its partition's lease, the new owner replayed the work and went on), writing this
-- commit would put back the state it replaced (an ended journey running again, entries twice): refuse it.
local stored_entry = redis.call('HGET', profile_key, APPLIED_ENTRY) or ''
if stored_entry ~= read_entry then
  return redis.error_reply(STALE_COMMIT .. ' applied ' .. stored_entry .. ', read ' .. read_entry)
end

local args = argument_reader(7)
-- The instance ids of `items` (id, or id and JSON when width is 2) as profile fields, appended to `named`.
local function instance_fields(items, width, named)
  for j = 1, #items, width do
    named[#named + 1] = INSTANCE_FIELD .. items[j]
    if width == 2 then named[#named + 1] = items[j + 1] end
  end
  return named
end

if created then redis.call('HSETNX', profile_key, CREATED_AT, now) end
-- The profile's fields set by this commit (instances, profile fields, the applied entry) go in one HSET.
local profile_fields = {}
if applied_entry ~= '' then profile_fields = {APPLIED_ENTRY, applied_entry} end
local seen = args.section(2)
if #seen > 0 then
  local zargs = {}
  for j = 1, #seen, 2 do zargs[#zargs + 1] = seen[j + 1]; zargs[#zargs + 1] = seen[j] end
  redis.call('ZADD', seen_key, unpack(zargs))
  redis.call('ZREMRANGEBYSCORE', seen_key, '-inf', '(' .. seen_since)
end
local timeline = args.section(1)
if #timeline > 0 then
  local over = redis.call('RPUSH', timeline_key, unpack(timeline)) - timeline_limit
  if over > 0 then
    redis.call('LTRIM', timeline_key, over, -1)
    redis.call('HINCRBY', profile_key, TIMELINE_TRIMMED, over)
  end
end
instance_fields(args.section(2), 2, profile_fields)
call_with_items('HDEL', profile_key, instance_fields(args.section(1), 1, {}))
call_with_items('HSET', entries_key, args.section(2))
call_with_items('HSET', attrs_key, args.section(2))
call_with_items('HDEL', attrs_key, args.section(1))
for _, item in ipairs(args.section(2)) do profile_fields[#profile_fields + 1] = item end
call_with_items('HSET', profile_key, profile_fields)
for _ = 1, tonumber(args.take()) do
  local message_id, record = args.take(), args.take()
  local history = {}
  for j = 1, 2 * tonumber(args.take()) do history[j] = args.take() end
  write_message(messages_key, message_id, record, history)
end
call_with_items('SREM', claims_key, args.section(1))
return 1
