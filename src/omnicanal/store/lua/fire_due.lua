-- Move the timers due at `now` (at most `limit` of them) into their partition's work stream and remove them, in
-- one step: a timer fires once even with several pollers. Returns how many fired.
local timers_key = KEYS[1]
local work_key = KEYS[2]
local now = ARGV[1]
local limit = tonumber(ARGV[2])

local due = redis.call('ZRANGEBYSCORE', timers_key, '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  redis.call('XADD', work_key, '*', STREAM_KIND, TIMER_KIND, STREAM_MEMBER, member)
end
if #due > 0 then
  redis.call('ZREM', timers_key, unpack(due))
end
return #due
