-- A backfill's walk moved: the cursor it reached and how many customers it queued (with `total`, the walk
-- begins: how many customers there are); `finished` 1: walked to the end. Only if the record is still the
-- backfill of this definition (a reload may have armed a newer one meanwhile, which starts from its own
-- beginning). Returns 1 when recorded, 0 when the backfill was superseded.
local record_key = KEYS[1]
local fingerprint = ARGV[1]
local cursor = ARGV[2]
local considered = ARGV[3]
local finished = ARGV[4]
local now = ARGV[5]
local total = ARGV[6]

if redis.call('HGET', record_key, BACKFILL_FINGERPRINT) ~= fingerprint then
  return 0
end
if total ~= '' then
  redis.call('HSETNX', record_key, BACKFILL_TOTAL, total)
end
redis.call('HSET', record_key, BACKFILL_CURSOR, cursor)
redis.call('HINCRBY', record_key, BACKFILL_CONSIDERED, considered)
if finished == '1' then
  redis.call('HSET', record_key, BACKFILL_STATE, BACKFILL_DONE, BACKFILL_WALKED_AT, now)
end
return 1
