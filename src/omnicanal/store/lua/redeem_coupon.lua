-- A coupon presented at the till, on the site...: checked and marked used in one step, so that two redemptions
-- of one code cannot both pass. The same redemption event again (a replay) passes again.
-- Returns {status, record fields...}: status 'redeemed', 'unknown' (no such code), 'expired' or 'used'.
local coupon_key = KEYS[1]
local event_id = ARGV[1]
local now = tonumber(ARGV[2])

local fields = redis.call('HGETALL', coupon_key)
if #fields == 0 then return {'unknown'} end
local coupon = {}
for j = 1, #fields, 2 do coupon[fields[j]] = fields[j + 1] end
local answer = {'redeemed'}
for j = 1, #fields do answer[#answer + 1] = fields[j] end
if coupon[COUPON_USED_BY] and coupon[COUPON_USED_BY] ~= event_id then answer[1] = 'used'; return answer end
if tonumber(coupon[COUPON_EXPIRES]) < now then answer[1] = 'expired'; return answer end
redis.call('HSET', coupon_key, COUPON_USED_BY, event_id, COUPON_USED_AT, tostring(now))
return answer
