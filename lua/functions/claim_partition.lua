--[=[
claim_partition — takes or renews one worker's lease on a partition (a sweeper's, a notifier's), so
that one process of the kind at a time works it. A crashed process's lease runs out (Redis expiry)
and another process takes over.

KEYS[1] lease     cd:{p:<n>}:lease:<role>    string: owner id, with an expiry
ARGV[1] owner     [A-Za-z0-9._:-]{1,64}, unique per server process
ARGV[2] lease_ms  integer 100..600000
Returns {code, message, '1'} when the caller holds the lease now, {code, message, '0'} when another
owner does. Codes: SUCCESS, INVALID_REQUEST.
]=]

local function claim_partition(raw_keys, args)
  local keys = named_keys('claim_partition', raw_keys)
  local checked, request = run_checked(function()
    check_argument_count(args, 2)
    return {
      owner = check_text(args[1], 'owner', ID_PATTERN, 64),
      lease_ms = parse_integer(args[2], 'lease_ms', 100, 600000),
    }
  end)
  if not checked then
    return reply(request.code, request.message)
  end
  local holder = redis.call('GET', keys.lease)
  if holder and holder ~= request.owner then
    return reply(CODE.SUCCESS, '', '0')
  end
  redis.call('SET', keys.lease, request.owner, 'PX', request.lease_ms)
  return reply(CODE.SUCCESS, '', '1')
end

redis.register_function('claim_partition', claim_partition)
