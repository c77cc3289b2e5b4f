-- A JSON object of `fields`: `{}` when there are none (cjson cannot tell an empty object from an empty array).
local function encode_object(fields)
  if next(fields) == nil then return '{}' end
  return cjson.encode(fields)
end
