#!lua name=creditd_baseline
--[=[
reserve_baseline — the minimal reserve-shaped function the `charge` call is measured against
(loadtest/redis_time.py): what any reservation must at least do in Redis.

KEYS[1] account  hash with balance and reserved
KEYS[2] record   string: the request's idempotency record
KEYS[3] stream   stream: the change's event
ARGV[1] amount   integer to reserve
Returns 1 when reserved, 0 when the record says it was already, -1 when available does not pay.
]=]
local function reserve_baseline(keys, args)
  local amount = tonumber(args[1])
  local values = redis.call('HMGET', keys[1], 'balance', 'reserved')
  if redis.call('GET', keys[2]) then
    return 0
  end
  if (tonumber(values[1]) or 0) - (tonumber(values[2]) or 0) < amount then
    return -1
  end
  redis.call('HINCRBY', keys[1], 'reserved', amount)
  redis.call('HSET', keys[1], 'last_amount', amount)
  redis.call('SET', keys[2], '1')
  redis.call('EXPIRE', keys[2], 3600)
  redis.call('XADD', keys[3], 'MAXLEN', '~', 1000, '*', 'kind', 'reserved', 'amount', amount)
  return 1
end

redis.register_function('reserve_baseline', reserve_baseline)
