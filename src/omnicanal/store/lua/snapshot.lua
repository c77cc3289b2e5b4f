-- All a worker reads before applying a customer's work, in one command: the profile split into its fields and
-- the running instances, the attributes, the journey entries, which of the given event ids were applied, the
-- timeline entries the instances that keep their event there point at, the timeline's length, and the messages
-- claimed by work not yet committed.
-- Returns {profile fields, attributes, instances, entries, applied ids, {instance id, timeline entry}..., length,
-- claimed message ids}
-- (hashes flat: field, value, field, value...; an entry that is gone: "").
local profile_key = KEYS[1]
local attrs_key = KEYS[2]
local entries_key = KEYS[3]
local seen_key = KEYS[4]
local timeline_key = KEYS[5]
local claims_key = KEYS[6]
local event_ids = ARGV

local profile = redis.call('HGETALL', profile_key)
local fields = {}
local instances = {}
local trimmed = 0
for j = 1, #profile, 2 do
  local name = profile[j]
  if string.sub(name, 1, #INSTANCE_FIELD) == INSTANCE_FIELD then
    instances[#instances + 1] = string.sub(name, #INSTANCE_FIELD + 1)
    instances[#instances + 1] = profile[j + 1]
  else
    if name == TIMELINE_TRIMMED then trimmed = tonumber(profile[j + 1]) end
    fields[#fields + 1] = name
    fields[#fields + 1] = profile[j + 1]
  end
end
local seen = {}
for _, id in ipairs(event_ids) do
  if redis.call('ZSCORE', seen_key, id) then seen[#seen + 1] = id end
end
local events = {}
for j = 2, #instances, 2 do
  local at = string.match(instances[j], EVENT_AT_PATTERN)
  if at then
    events[#events + 1] = instances[j - 1]
    events[#events + 1] = redis.call('LINDEX', timeline_key, tonumber(at) - trimmed) or ''
  end
end
return {fields, redis.call('HGETALL', attrs_key), instances, redis.call('HGETALL', entries_key), seen, events,
        redis.call('LLEN', timeline_key), redis.call('SMEMBERS', claims_key)}
