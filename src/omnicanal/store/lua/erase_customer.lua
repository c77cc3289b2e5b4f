-- Delete every key of one customer (CustomerKeys.all(), in the customer's slot) at once: nothing of them is left
-- half erased. With ARGV[1] (a customer id), only if the customer is a tombstone merged into that one (an
-- anonymous visitor the erased customer absorbed); a customer that is something else is left alone. Returns how
-- many keys existed.
local profile_key = KEYS[1]
local attrs_key = KEYS[2]
local entries_key = KEYS[3]
local timeline_key = KEYS[4]
local messages_key = KEYS[5]
local seen_key = KEYS[6]
local sends_key = KEYS[7]
local inbound_key = KEYS[8]
local claims_key = KEYS[9]
local inbox_key = KEYS[10]
local inbox_order_key = KEYS[11]
local merged_into = ARGV[1]

if merged_into ~= '' and redis.call('HGET', profile_key, MERGED_INTO) ~= merged_into then return 0 end
return redis.call('DEL', profile_key, attrs_key, entries_key, timeline_key, messages_key, seen_key, sends_key,
                  inbound_key, claims_key, inbox_key, inbox_order_key)
