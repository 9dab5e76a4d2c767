--[=[
set_credit_limit — an operator's credit limit for one account (a manual override that tier
recomputes leave alone), or, with credit_limit '', the override cleared and the limit of the
account's credit tier back. A change writes a ledger entry of amount 0 and an event; a lower limit
can exhaust credit (one-way suspension), a higher one resume a credit suspension.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: the card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
ARGV[1] now_ms        integer, Unix ms
ARGV[2] account_id    [A-Za-z0-9._:-]{1,64}
ARGV[3] credit_limit_minor  integer minor units 0..max_amount_minor, or '' to clear the override
ARGV[4] actor         the caller's identity, recorded in the ledger
Returns {code, message, account_json}.
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN, ACCOUNT_TERMINATED.
]=]

local function check_set_credit_limit(keys, args)
  check_argument_count(args, 4)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  if args[3] ~= '' then
    request.credit_limit = parse_integer(args[3], 'credit_limit', 0, CONFIG.limits.max_amount_minor)
  end
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  refuse_terminated(account)
  return { account = account, request = request }
end

local function set_credit_limit(raw_keys, args)
  local keys = named_keys('set_credit_limit', raw_keys)
  local checked, outcome = run_checked(check_set_credit_limit, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  apply_due_changes(account, request.now_ms)
  if request.credit_limit ~= nil then
    account.credit_limit_override = '1'
    change_credit_limit(account, request.now_ms, request.credit_limit, 'operator')
  else
    account.credit_limit_override = '0'
    change_credit_limit(account, request.now_ms, tier_credit_limit(account), 'tier ' .. account.tier)
  end
  save_account(account, keys)
  return reply(CODE.SUCCESS, '', account_json(account, redis.call('SCARD', keys.sessions), request.now_ms))
end

redis.register_function('set_credit_limit', set_credit_limit)
