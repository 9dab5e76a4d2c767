--[=[
set_status — operator suspension, resume or termination. Setting the current status and reason again
changes nothing. A terminated account never leaves TERMINATED.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: the card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] status      integer 1 ACTIVE, 2 ONE_WAY_SUSPENDED, 3 TWO_WAY_SUSPENDED, 4 TERMINATED
ARGV[4] reason      ADMIN or FRAUD
ARGV[5] actor       the caller's identity, recorded in the ledger
Returns {code, message, account_json}.
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN, ACCOUNT_TERMINATED.
]=]
local OPERATOR_REASONS = { ADMIN = true, FRAUD = true }

local function check_set_status(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    status = parse_integer(args[3], 'status', 1, 4),
    reason = args[4],
    actor = check_actor(args),
  }
  if not OPERATOR_REASONS[request.reason] then
    refuse(CODE.INVALID_REQUEST, 'reason: must be ADMIN or FRAUD')
  end
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  apply_due_changes(account, request.now_ms)
  if account.status == STATUS.TERMINATED and request.status ~= STATUS.TERMINATED then
    refuse(CODE.ACCOUNT_TERMINATED, 'status: a terminated account cannot change status')
  end
  if request.status == STATUS.ACTIVE and account.balance + account.credit_limit <= 0 then
    refuse(CODE.INVALID_REQUEST, 'status: cannot resume an account whose credit is exhausted; top up first')
  end
  return { account = account, request = request }
end

local function set_status_function(raw_keys, args)
  local keys = named_keys('set_status', raw_keys)
  local checked, outcome = run_checked(check_set_status, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  if account.status ~= STATUS.TERMINATED then
    set_status(account, request.now_ms, request.status, request.reason, 'operator')
  end
  if account_changed(account) then  -- an operator's change, or changes that fell due first
    save_account(account, keys)
  end
  return reply(CODE.SUCCESS, '', account_json(account, redis.call('SCARD', keys.sessions), request.now_ms))
end

redis.register_function('set_status', set_status_function)
