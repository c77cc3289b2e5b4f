-- Calls `command` on `key` with `items` as its arguments, unless there are none.
local function call_with_items(command, key, items)
  if #items > 0 then redis.call(command, key, unpack(items)) end
end
