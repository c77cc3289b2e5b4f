-- Reads ARGV in order from position `start`: take() gives the next argument, section(width) the items of the next
-- section (a count n, then n * width arguments) as a list.
local function argument_reader(start)
  local i = start
  local reader = {}
  function reader.take()
    i = i + 1
    return ARGV[i - 1]
  end
  function reader.section(width)
    local n = tonumber(reader.take())
    local items = {}
    for j = i, i + n * width - 1 do items[#items + 1] = ARGV[j] end
    i = i + n * width
    return items
  end
  return reader
end
