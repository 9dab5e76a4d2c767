--[=[
set_plan — an operator moves one account to another plan of its currency, as a cohort plan change
does (lib/lifecycle.lua): the account's next grants are priced by the new plan's tariffs (an open
session keeps the price it was granted until its next grant); buckets, balance and credit limit stay.
A change writes a ledger entry 'plan' of amount 0 and an event plan_changed; the same plan again
changes nothing.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: the card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] plan        a configured plan's name, in the account's currency
ARGV[4] actor       the caller's identity, recorded in the ledger
Returns {code, message, account_json}.
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN, ACCOUNT_TERMINATED.
]=]

local function check_set_plan(keys, args)
  check_argument_count(args, 4)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    plan = check_text(args[3], 'plan', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  local target = CONFIG.plans[request.plan]
  if not target then
    refuse(CODE.INVALID_REQUEST, 'plan: no such plan')
  end
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  refuse_terminated(account)
  if target.currency ~= account.currency then
    refuse(CODE.INVALID_REQUEST, 'plan: the plan is in ' .. target.currency .. ', the account in ' .. account.currency)
  end
  return { account = account, request = request }
end

local function set_plan(raw_keys, args)
  local keys = named_keys('set_plan', raw_keys)
  local checked, outcome = run_checked(check_set_plan, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  apply_due_changes(account, request.now_ms)
  if account.plan ~= request.plan then
    local reference = 'operator: ' .. account.plan .. ' -> ' .. request.plan
    account.plan = request.plan
    queue_ledger(account, request.now_ms, 'plan', 0, reference)
    queue_event(account, request.now_ms, 'plan_changed', request.plan .. ' operator')
  end
  if account_changed(account) then
    save_account(account, keys)
  end
  return reply(CODE.SUCCESS, '', account_json(account, redis.call('SCARD', keys.sessions), request.now_ms))
end

redis.register_function('set_plan', set_plan)
