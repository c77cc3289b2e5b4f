-- Appends to a message's status history (the field message id .. HISTORY_SUFFIX of the messages hash) the
-- entries whose status it does not hold yet, in order, without re-encoding the entries already there.
-- entries: a flat list {status, entry JSON, status, entry JSON...}.
local function append_statuses(messages_key, message_id, entries)
  local history_field = message_id .. HISTORY_SUFFIX
  local stored = redis.call('HGET', messages_key, history_field)
  local given = {}
  for j = 2, #entries, 2 do given[#given + 1] = entries[j] end
  local history = '[' .. table.concat(given, ',') .. ']'
  if not stored or string.sub(history, 1, #stored - 1) == string.sub(stored, 1, -2) then
    -- the usual case, decided without decoding: the stored history is where the given one starts
    if history ~= stored then redis.call('HSET', messages_key, history_field, history) end
    return
  end
  local held = {}
  for _, entry in ipairs(cjson.decode(stored)) do held[entry.status] = true end
  local added = {}
  for j = 1, #entries, 2 do
    if not held[entries[j]] then
      held[entries[j]] = true
      added[#added + 1] = entries[j + 1]
    end
  end
  if #added > 0 then
    history = string.sub(stored, 1, -2) .. ',' .. table.concat(added, ',') .. ']'
    redis.call('HSET', messages_key, history_field, history)
  end
end
