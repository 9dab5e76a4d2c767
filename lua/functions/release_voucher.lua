--[=[
release_voucher — gives a claimed voucher back when the account that claimed it could not be paid
(its top-up was refused because the account is terminated or gone: top_up checks the status and the
voucher's record in one call, and answers a replay before the status, so that refusal means nothing
was paid). Only the claiming account's claim is released; a voucher claimed by another, or by none,
is left as it is.

KEYS[1] voucher  cd:voucher:{<idempotency_key>}   hash (create_voucher)
ARGV[1] code_hash   64 lowercase hex digits: SHA-256 of the code
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}: the account whose claim is given back
ARGV[3] actor       the caller's identity (not stored)
Returns {code, message, '1'} when released, '0' when the voucher was not claimed by that account.
Codes: SUCCESS, INVALID_REQUEST (field named).
]=]

local function release_voucher(raw_keys, args)
  local keys = named_keys('release_voucher', raw_keys)
  local checked, request = run_checked(function()
    check_argument_count(args, 3)
    return {
      code_hash = check_hash(args[1], 'code_hash'),
      account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
      actor = check_actor(args),
    }
  end)
  if not checked then
    return reply(request.code, request.message)
  end
  if redis.call('HGET', keys.voucher, 'claimed_by') ~= request.account_id then
    return reply(CODE.SUCCESS, '', '0')
  end
  redis.call('HSET', keys.voucher, 'claimed_by', '', 'claimed_at_ms', '0')
  return reply(CODE.SUCCESS, '', '1')
end

redis.register_function('release_voucher', release_voucher)
