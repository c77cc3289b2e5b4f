-- A segment's definition as a process loaded it: unless its fingerprint is the one recorded, the segment is new
-- or changed, and a backfill begins afresh (its record reset, the walk of every customer from the start) —
-- once, however many processes load the same files. Returns 1 when it began, 0 when this definition had one.
local record_key = KEYS[1]
local index_key = KEYS[2]
local segment_id = ARGV[1]
local fingerprint = ARGV[2]
local armed_at = ARGV[3]

if redis.call('HGET', record_key, BACKFILL_FINGERPRINT) == fingerprint then
  return 0
end
redis.call('DEL', record_key)
redis.call('HSET', record_key, BACKFILL_FINGERPRINT, fingerprint, BACKFILL_STATE, BACKFILL_WALKING,
           BACKFILL_CURSOR, '0', BACKFILL_CONSIDERED, 0, BACKFILL_ARMED_AT, armed_at)
redis.call('SADD', index_key, segment_id)
return 1
