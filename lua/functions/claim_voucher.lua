--[=[
claim_voucher — binds a voucher to the account redeeming it, once: the first account to claim it
owns it for good. The caller then tops the account up with the voucher's amount under an idempotency
key made of the voucher (top_up), so a claim repeated by the same account (a double click, a retry
after a crash between the two calls) tops up once, and a second account is refused. A repeat is
answered only within half of limits.topup_key_retention_s of the claim: later the top-up's record
may be gone and the repeat would pay again, so it is refused as a used voucher.

KEYS[1] voucher  cd:voucher:{<idempotency_key>}   hash (create_voucher)
ARGV[1] now_ms      integer, Unix ms
ARGV[2] code_hash   64 lowercase hex digits: SHA-256 of the code typed
ARGV[3] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[4] currency    ISO 4217 code: the account's; a voucher in another is refused
ARGV[5] actor       the caller's identity (not stored)
Returns {code, message, '{"amount":…,"replayed":0|1}'} (replayed: this account had claimed it).
Codes: SUCCESS, INVALID_REQUEST (field named), USER_UNKNOWN (no such voucher), REFUSED (used by
another account, expired, another currency).
]=]

local function check_claim_voucher(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    code_hash = check_hash(args[2], 'code_hash'),
    account_id = check_text(args[3], 'account_id', ID_PATTERN, 64),
    currency = check_text(args[4], 'currency', '^%u%u%u$', 3),
    actor = check_actor(args),
  }
  local stored = redis.call('HMGET', keys.voucher, 'amount', 'currency', 'expires_at_ms', 'claimed_by', 'claimed_at_ms')
  if not stored[1] then
    refuse(CODE.USER_UNKNOWN, 'code: no such voucher')
  end
  request.amount, request.claimed_by = tonumber(stored[1]), stored[4]
  if request.claimed_by ~= '' and request.claimed_by ~= request.account_id then
    refuse(CODE.REFUSED, 'code: this voucher has been used')
  end
  -- half the retention: the record is written after the claim, on another server's clock
  local repeat_until_ms = tonumber(stored[5] or '0') + CONFIG.limits.topup_key_retention_s * 500
  if request.claimed_by == request.account_id and request.now_ms >= repeat_until_ms then
    refuse(CODE.REFUSED, 'code: this voucher has been used')
  end
  if request.claimed_by == '' and request.now_ms >= tonumber(stored[3]) then
    refuse(CODE.REFUSED, 'code: this voucher has expired')
  end
  if stored[2] ~= request.currency then
    refuse(CODE.REFUSED, 'code: a voucher in ' .. stored[2] .. ', the account is in ' .. request.currency)
  end
  return request
end

local function claim_voucher(raw_keys, args)
  local keys = named_keys('claim_voucher', raw_keys)
  local checked, request = run_checked(check_claim_voucher, keys, args)
  if not checked then
    return reply(request.code, request.message)
  end
  local replayed = request.claimed_by == request.account_id
  if not replayed then
    redis.call('HSET', keys.voucher, 'claimed_by', request.account_id, 'claimed_at_ms', format_integer(request.now_ms))
  end
  return reply(CODE.SUCCESS, replayed and 'replayed' or '',
    '{"amount":' .. format_integer(request.amount) .. ',"replayed":' .. (replayed and '1' or '0') .. '}')
end

redis.register_function('claim_voucher', claim_voucher)
