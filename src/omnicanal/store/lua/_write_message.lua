-- A message's status history (the field message id .. HISTORY_SUFFIX of the messages hash) with the entries
-- whose status it does not hold yet appended, in order, without re-encoding the entries already there; nil when
-- nothing is to be added (the caller writes it, with whatever else it sets: one HSET).
-- entries: a flat list {status, entry JSON, status, entry JSON...}.
local function merged_history(messages_key, message_id, entries)
  local stored = redis.call('HGET', messages_key, message_id .. HISTORY_SUFFIX)
  local given = {}
  for j = 2, #entries, 2 do given[#given + 1] = entries[j] end
  local history = '[' .. table.concat(given, ',') .. ']'
  if not stored or string.sub(history, 1, #stored - 1) == string.sub(stored, 1, -2) then
    -- the usual case, decided without decoding: the stored history is where the given one starts
    if history ~= stored then return history end
    return nil
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
  if #added == 0 then return nil end
  return string.sub(stored, 1, -2) .. ',' .. table.concat(added, ',') .. ']'
end

-- Sets the message's record (unless nil) and its history merged with `entries` (see merged_history): one HSET.
local function write_message(messages_key, message_id, record, entries)
  local fields = {}
  if record then fields = {message_id, record} end
  local history = merged_history(messages_key, message_id, entries)
  if history then
    fields[#fields + 1] = message_id .. HISTORY_SUFFIX
    fields[#fields + 1] = history
  end
  if #fields > 0 then redis.call('HSET', messages_key, unpack(fields)) end
end
