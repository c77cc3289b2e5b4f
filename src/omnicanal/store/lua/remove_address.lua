-- Forget an address the provider says is dead (an unregistered push token, an unknown number), in one step so
-- that an address given meanwhile is kept. Returns 1 if the customer had it, 0 otherwise.
local profile_key = KEYS[1]
local channel = ARGV[1]
local address = ARGV[2]

local raw = redis.call('HGET', profile_key, ADDRESSES)
if not raw then return 0 end
local addresses = cjson.decode(raw)
local value = addresses[channel]
if type(value) == 'table' then
  local kept = {}
  for _, other in ipairs(value) do
    if other ~= address then kept[#kept + 1] = other end
  end
  if #kept == #value then return 0 end
  if #kept == 0 then kept = nil end
  addresses[channel] = kept
elseif value == address then
  addresses[channel] = nil
else
  return 0
end
redis.call('HSET', profile_key, ADDRESSES, encode_object(addresses))
return 1
