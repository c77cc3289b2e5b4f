-- Compare-and-set of one identity entry (an e-mail, phone, push token or anonymous id -> its customer): point it at
-- ARGV[2] ('': forget it) if it points at ARGV[1] now ('': at nobody). Returns whom it points at afterwards
-- ('': nobody), so a claim that lost says who owns the identifier.
local identity_key = KEYS[1]
local expected = ARGV[1]
local wanted = ARGV[2]

local owner = redis.call('GET', identity_key) or ''
if owner ~= expected then return owner end
if wanted == '' then redis.call('DEL', identity_key) else redis.call('SET', identity_key, wanted) end
return wanted
