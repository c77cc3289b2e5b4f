-- A profile update (PUT /v1/customers, an inbound message, a STOP keyword), applied in one step so that it never
-- loses a change a worker or another request made meanwhile: given fields replace, addresses merge per channel
-- (an empty or null address removes the channel's), consents merge per channel and purpose (a decision replaces
-- the stored one unless it was taken earlier: policy/consent.merge; a channel without any is not kept),
-- attributes are set or (null) removed; the customer is known from then on (KNOWN_AT). An update from a provider's
-- message is applied once per message id (a replayed webhook returns {0} and changes nothing); the newest
-- INBOUND_KEPT ids are remembered. Returns {1, the addresses before, after} as JSON ('' when none were given),
-- and with `olds` the stored JSON of every attribute given, read before the write (false: it had none), in the
-- order given (those set, then those removed): the caller tells which changed (customer.updated).
-- ARGV after the fixed ones: sections, each a count followed by its items: fields to set (name, text), fields to
-- delete (name), attributes to set (name, JSON), attributes to delete (name).
local profile_key = KEYS[1]
local attrs_key = KEYS[2]
local inbound_key = KEYS[3]
local now = ARGV[1]
local addresses = ARGV[2]  -- the addresses given, as JSON ('': none)
local consents = ARGV[3]  -- the consents given, as JSON ('': none)
local once = ARGV[4]  -- the provider's message id the update comes from ('': none)
local olds = ARGV[5] == '1'  -- return the attributes' stored values before the write

if once ~= '' then
  if redis.call('ZSCORE', inbound_key, once) then return {0} end
  redis.call('ZADD', inbound_key, now, once)
  redis.call('ZREMRANGEBYRANK', inbound_key, 0, -INBOUND_KEPT - 1)
end
local args = argument_reader(6)
local function stored(field)
  local raw = redis.call('HGET', profile_key, field)
  if raw then return cjson.decode(raw) end
  return {}
end
local function removes(address)
  return address == cjson.null or address == '' or (type(address) == 'table' and next(address) == nil)
end

redis.call('HSETNX', profile_key, CREATED_AT, now)
redis.call('HSETNX', profile_key, KNOWN_AT, now)
local fields = {UPDATED_AT, now}
local before, after = '', ''
if addresses ~= '' then
  before = redis.call('HGET', profile_key, ADDRESSES) or '{}'
  local merged = stored(ADDRESSES)
  for channel, address in pairs(cjson.decode(addresses)) do
    if removes(address) then merged[channel] = nil else merged[channel] = address end
  end
  after = encode_object(merged)
  fields[#fields + 1] = ADDRESSES
  fields[#fields + 1] = after
end
if consents ~= '' then
  local merged = stored(CONSENTS)
  for channel, purposes in pairs(cjson.decode(consents)) do
    local decisions = merged[channel] or {}
    for purpose, decision in pairs(purposes) do
      local stored_decision = decisions[purpose]
      if stored_decision == nil or tostring(decision.at or '') >= tostring(stored_decision.at or '') then
        decisions[purpose] = decision
      end
    end
    if next(decisions) ~= nil then merged[channel] = decisions end
  end
  fields[#fields + 1] = CONSENTS
  fields[#fields + 1] = encode_object(merged)
end
for _, item in ipairs(args.section(2)) do fields[#fields + 1] = item end
redis.call('HSET', profile_key, unpack(fields))
call_with_items('HDEL', profile_key, args.section(1))
local set, removed = args.section(2), args.section(1)
local answer = {1, before, after}
if olds then
  local names = {}
  for j = 1, #set, 2 do names[#names + 1] = set[j] end
  for _, name in ipairs(removed) do names[#names + 1] = name end
  if #names > 0 then
    for _, old in ipairs(redis.call('HMGET', attrs_key, unpack(names))) do answer[#answer + 1] = old end
  end
end
call_with_items('HSET', attrs_key, set)
call_with_items('HDEL', attrs_key, removed)
return answer
