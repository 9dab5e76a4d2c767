--[=[
top_up — credits money to an account, at most once per idempotency key; pays debt first by simply
adding to the balance, recovers what the account owes for loans (borrow) from the amount (a
loan_recovery ledger entry, up to the amount; the rest stays owed), and resumes a credit-suspended
account when available becomes positive; grants the plan's top-up bonus (lib/bonus.lua), if any.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>                          packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>                     set (read: the card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>                        list
KEYS[4] events     cd:{p:<n>}:events                                     stream
KEYS[5] record     cd:{p:<n>}:topup:<account_id>/<idempotency_key>  string '<fingerprint>|<ledger_seq>'
KEYS[6] stats      cd:{p:<n>}:stats                                      hash
KEYS[7] due        cd:{p:<n>}:due                                        zset (lib/lifecycle.lua)
KEYS[8] blacklist  cd:{p:<n>}:blacklist                                  set
KEYS[+1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<token hash>, only in a SelfService call:
         absent, the call is refused SESSION_ENDED before anything else (lib/keys.lua)
ARGV[1] now_ms           integer, Unix ms
ARGV[2] account_id       [A-Za-z0-9._:-]{1,64}
ARGV[3] amount_minor    integer minor units, 1..max_amount_minor
ARGV[4] channel          [A-Za-z0-9._:-]{1,64}
ARGV[5] idempotency_key  [A-Za-z0-9._:-]{1,64}, unique per account
ARGV[6] actor            the caller's identity (the channel's certificate), recorded in the ledger
Returns {code, message, '{"account":<account_json>,"replayed":0|1,"ledger_seq":<n>}'}.
Codes: SUCCESS; INVALID_REQUEST (bad field, key reused with another amount or channel, balance would
exceed max_balance_minor); USER_UNKNOWN; ACCOUNT_TERMINATED.
]=]

local function parse_top_up(args)
  check_argument_count(args, 6)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    amount = parse_integer(args[3], 'amount', 1, CONFIG.limits.max_amount_minor),
    channel = check_text(args[4], 'channel', ID_PATTERN, 64),
    idempotency_key = check_text(args[5], 'idempotency_key', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  request.fingerprint = redis.sha1hex(table.concat(args, '\n', 2, 5))
  return request
end

local function check_top_up(keys, args)
  local request = parse_top_up(args)
  local account, seq = load_for_keyed_call(keys, request)
  if seq then
    return { account = account, request = request, replayed_seq = seq }
  end
  if account.balance + request.amount > CONFIG.limits.max_balance_minor then
    refuse(CODE.INVALID_REQUEST, 'amount: would take the balance above ' .. format_integer(CONFIG.limits.max_balance_minor))
  end
  return { account = account, request = request }
end

-- Loans (borrow) are paid back first, from the top-up itself, in the same call.
local function recover_loan(account, now_ms, amount, reference)
  if account.loan_outstanding == 0 then
    return
  end
  local recovered = math.min(account.loan_outstanding, amount)
  account.loan_outstanding = account.loan_outstanding - recovered
  queue_ledger(account, now_ms, 'loan_recovery', -recovered, reference, true)
  queue_event(account, now_ms, 'loan_recovered',
    format_integer(recovered) .. ' ' .. format_integer(account.loan_outstanding))
end

local function top_up(raw_keys, args)
  local keys = named_keys('top_up', raw_keys)
  local checked, outcome = run_checked(check_top_up, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  if outcome.replayed_seq then
    return reply(CODE.SUCCESS, 'replayed', keyed_answer_json(account, keys, request.now_ms, 1, outcome.replayed_seq))
  end
  local reference = request.channel .. ' ' .. request.idempotency_key
  local seq = queue_ledger(account, request.now_ms, 'topup', request.amount, reference)
  queue_event(account, request.now_ms, 'topup', format_integer(request.amount) .. ' ' .. request.channel)
  recover_loan(account, request.now_ms, request.amount, reference)
  grant_topup_bonus(account, request.now_ms, request.amount, seq)
  apply_credit_recovery(account, request.now_ms, reference, 'TOPUP')
  save_account(account, keys)
  remember_applied(keys.record, request.fingerprint, seq)
  return reply(CODE.SUCCESS, '', keyed_answer_json(account, keys, request.now_ms, 0, format_integer(seq)))
end

redis.register_function('top_up', top_up)
