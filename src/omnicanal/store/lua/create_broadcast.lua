-- Create a broadcast once: its record (a hash) and its place in the index of broadcasts and of those still to
-- walk. Returns 1 when created, 0 when a broadcast of that id exists (a scheduled occurrence that another
-- process created first: each occurrence runs once).
local record_key = KEYS[1]
local index_key = KEYS[2]
local active_key = KEYS[3]
local broadcast_id = ARGV[1]
local created_at = ARGV[2]

if redis.call('EXISTS', record_key) == 1 then
  return 0
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', record_key, unpack(fields))
redis.call('ZADD', index_key, created_at, broadcast_id)
redis.call('SADD', active_key, broadcast_id)
return 1
