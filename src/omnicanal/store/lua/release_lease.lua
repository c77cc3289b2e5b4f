-- Give a partition's lease up if this worker holds it. Returns 1 if it did, 0 otherwise.
local lease_key = KEYS[1]
local worker_id = ARGV[1]

if redis.call('GET', lease_key) == worker_id then
  return redis.call('DEL', lease_key)
end
return 0
