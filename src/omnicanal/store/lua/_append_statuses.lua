-- Appends to a message's status history (the field message id .. HISTORY_SUFFIX of the messages hash) the
-- entries whose status it does not hold yet, in order, without re-encoding the entries already there.
-- entries: a flat list {status, entry JSON, status, entry JSON...}. Returns how many were appended.
local function append_statuses(messages_key, message_id, entries)
  local history_field = message_id .. HISTORY_SUFFIX
  local stored = redis.call('HGET', messages_key, history_field)
  local held = {}
  if stored then
    for _, entry in ipairs(cjson.decode(stored)) do held[entry.status] = true end
  end
  local added = {}
  for j = 1, #entries, 2 do
    if not held[entries[j]] then
      held[entries[j]] = true
      added[#added + 1] = entries[j + 1]
    end
  end
  if #added == 0 then return 0 end
  local history = '[' .. table.concat(added, ',') .. ']'
  if stored and stored ~= '[]' then
    history = string.sub(stored, 1, -2) .. ',' .. string.sub(history, 2)
  end
  redis.call('HSET', messages_key, history_field, history)
  return #added
end
