-- Replace records of the outbox (each ARGV after the first, its exact text) by ARGV[1], in place: positions (see
-- outbox_page.lua) stay as they were, so a reader paging through the outbox skips nothing. A record trimmed away
-- meanwhile is simply not found. Returns how many were replaced.
local list_key = KEYS[1]
local placeholder = ARGV[1]

local replaced = 0
for j = 2, #ARGV do
  local index = redis.call('LPOS', list_key, ARGV[j])
  if index then
    redis.call('LSET', list_key, index, placeholder)
    replaced = replaced + 1
  end
end
return replaced
