--[=[
adjust — an operator's correction: credits (amount > 0) or debits (amount < 0) an account, ledger kind
'adjustment' with the reason in the reference, at most once per idempotency key. A debit that
exhausts the credit suspends the account (one-way) and a credit that restores it resumes a
credit-suspension, exactly as charges and top-ups do.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>                          packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>                     set (read: notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>                        list
KEYS[4] events     cd:{p:<n>}:events                                     stream
KEYS[5] record     cd:{p:<n>}:topup:<account_id>/<idempotency_key>  string '<fingerprint>|<ledger_seq>'
KEYS[6] stats      cd:{p:<n>}:stats                                      hash
KEYS[7] due        cd:{p:<n>}:due                                        zset (lib/lifecycle.lua)
KEYS[8] blacklist  cd:{p:<n>}:blacklist                                  set
ARGV[1] now_ms           integer, Unix ms
ARGV[2] account_id       [A-Za-z0-9._:-]{1,64}
ARGV[3] amount_minor    integer minor units, signed, non-zero, |amount| <= max_amount_minor
ARGV[4] reason           text, 1..max_contact_field_length bytes, no control characters
ARGV[5] idempotency_key  [A-Za-z0-9._:-]{1,64}, unique per account (shared with top-ups and purchases)
ARGV[6] actor            the caller's identity, recorded in the ledger
Returns {code, message, '{"replayed":0|1,"ledger_seq":<n>,"balance":<minor units>}'}; message
  'replayed' for a repeated key.
Codes: SUCCESS; INVALID_REQUEST (bad field, key reused with another payload, balance out of
bounds); USER_UNKNOWN; ACCOUNT_TERMINATED.
]=]

local function parse_adjust(args)
  check_argument_count(args, 6)
  local limits = CONFIG.limits
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    amount = parse_integer(args[3], 'amount', -limits.max_amount_minor, limits.max_amount_minor),
    reason = check_free_text(args[4], 'reason', limits.max_contact_field_length),
    idempotency_key = check_text(args[5], 'idempotency_key', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  if request.amount == 0 then
    refuse(CODE.INVALID_REQUEST, 'amount: must not be 0')
  end
  if request.reason == '' then
    refuse(CODE.INVALID_REQUEST, 'reason: must not be empty')
  end
  request.fingerprint = redis.sha1hex('adjust\n' .. table.concat(args, '\n', 2, 5))
  return request
end

local function check_adjust(keys, args)
  local request = parse_adjust(args)
  local account, seq = load_for_keyed_call(keys, request)
  if seq then
    return { account = account, request = request, replayed_seq = seq }
  end
  local balance = account.balance + request.amount
  if balance > CONFIG.limits.max_balance_minor or balance < -CONFIG.limits.max_balance_minor then
    refuse(CODE.INVALID_REQUEST, 'amount: would take the balance beyond ' .. format_integer(CONFIG.limits.max_balance_minor))
  end
  return { account = account, request = request }
end

local function adjust_json(replayed, seq, balance)
  return '{"replayed":' .. replayed .. ',"ledger_seq":' .. seq .. ',"balance":' .. format_integer(balance) .. '}'
end

local function adjust(raw_keys, args)
  local keys = named_keys('adjust', raw_keys)
  local checked, outcome = run_checked(check_adjust, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  if outcome.replayed_seq then
    return reply(CODE.SUCCESS, 'replayed', adjust_json(1, outcome.replayed_seq, account.balance))
  end
  local reference = request.idempotency_key .. ' ' .. request.reason
  local seq = queue_ledger(account, request.now_ms, 'adjustment', request.amount, reference)
  queue_event(account, request.now_ms, 'adjustment', format_integer(request.amount) .. ' ' .. request.idempotency_key)
  if request.amount > 0 then
    apply_credit_recovery(account, request.now_ms, reference, 'ADJUSTMENT')
  else
    apply_credit_exhaustion(account, request.now_ms, reference)
  end
  save_account(account, keys)
  remember_applied(keys.record, request.fingerprint, seq)
  return reply(CODE.SUCCESS, '', adjust_json(0, format_integer(seq), account.balance))
end

redis.register_function('adjust', adjust)
