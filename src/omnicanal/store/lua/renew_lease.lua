-- Extend a partition's lease if this worker still holds it. Returns 1 if it does, 0 otherwise.
local lease_key = KEYS[1]
local worker_id = ARGV[1]
local ttl_ms = ARGV[2]

if redis.call('GET', lease_key) == worker_id then
  return redis.call('PEXPIRE', lease_key, ttl_ms)
end
return 0
