--[=[
create_voucher — stores a top-up voucher under the SHA-256 of its code (the code itself is printed
once, by `creditd voucher create`, and kept nowhere): an amount in a currency, valid until a time.
The record stays 30 days past its expiry, for support questions.

KEYS[1] voucher  cd:voucher:{<idempotency_key>}   hash: amount, currency, expires_at_ms, batch, created_ms,
                                            claimed_by, claimed_at_ms
ARGV[1] now_ms         integer, Unix ms
ARGV[2] code_hash      64 lowercase hex digits: SHA-256 of the code
ARGV[3] amount_minor  integer 1..limits.max_amount_minor, minor units
ARGV[4] currency       ISO 4217 code ([A-Z]{3})
ARGV[5] expires_at_ms  integer, Unix ms: after now, within limits.max_voucher_validity_s
ARGV[6] batch          [A-Za-z0-9._:-]{1,64}: which print run it belongs to
ARGV[7] actor          the caller's identity
Returns {code, message, ''}. Codes: SUCCESS, INVALID_REQUEST (field named), ACCOUNT_EXISTS (a voucher
with this code exists).
]=]

local KEPT_AFTER_EXPIRY_MS = 30 * 86400 * 1000

local function check_create_voucher(keys, args)
  check_argument_count(args, 7)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    code_hash = check_hash(args[2], 'code_hash'),
    amount = parse_integer(args[3], 'amount', 1, CONFIG.limits.max_amount_minor),
    currency = check_text(args[4], 'currency', '^%u%u%u$', 3),
    batch = check_text(args[6], 'batch', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  request.expires_at_ms = parse_integer(args[5], 'expires_at_ms', request.now_ms + 1,
    request.now_ms + CONFIG.limits.max_voucher_validity_s * 1000)
  if redis.call('EXISTS', keys.voucher) == 1 then
    refuse(CODE.ACCOUNT_EXISTS, 'code_hash: a voucher with this code exists')
  end
  return request
end

local function create_voucher(raw_keys, args)
  local keys = named_keys('create_voucher', raw_keys)
  local checked, request = run_checked(check_create_voucher, keys, args)
  if not checked then
    return reply(request.code, request.message)
  end
  redis.call('HSET', keys.voucher, 'amount', format_integer(request.amount), 'currency', request.currency,
    'expires_at_ms', format_integer(request.expires_at_ms), 'batch', request.batch,
    'created_ms', format_integer(request.now_ms), 'claimed_by', '', 'claimed_at_ms', '0')
  -- Relative to the caller's now (functions never read Redis' clock), like every other expiry.
  redis.call('PEXPIRE', keys.voucher, request.expires_at_ms - request.now_ms + KEPT_AFTER_EXPIRY_MS)
  return reply(CODE.SUCCESS, '', '')
end

redis.register_function('create_voucher', create_voucher)
