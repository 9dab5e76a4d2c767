--[=[
apply_group_transfer — the member's side of a transfer with its shared wallet (lib/group.lua), at most
once per transfer id (the idempotency records of top-ups). To the member (direction 1): the amount is
credited (ledger 'group_transfer'; 0 when it just joins) and added to group_holding, the account
learns its group and refill amount, and a credit-suspended line resumes (reason GROUP). Back from the
member (direction 2): what is left of group_holding that no session holds comes off the balance
(ledger 'group_return'); leaving, the account forgets its group (what it could not give back, being
reserved, stays its own).

KEYS[1] account    cd:{p:<n>}:acct:<account_id>                          packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>                     set (read: notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>                        list
KEYS[4] events     cd:{p:<n>}:events                                     stream
KEYS[5] record     cd:{p:<n>}:topup:<account_id>/<idempotency_key>  string '<fingerprint>|<ledger_seq>' (key = transfer_id)
KEYS[6] stats      cd:{p:<n>}:stats                                      hash
KEYS[7] due        cd:{p:<n>}:due                                        zset (lib/lifecycle.lua)
KEYS[8] blacklist  cd:{p:<n>}:blacklist                                  set
ARGV[1] now_ms        integer, Unix ms
ARGV[2] account_id    [A-Za-z0-9._:-]{1,64}
ARGV[3] group_id      [A-Za-z0-9._:-]{1,64}
ARGV[4] currency      ISO 4217 code: the group's; an account in another is refused
ARGV[5] direction     integer 1 (to the member) or 2 (back from it)
ARGV[6] amount        integer minor units: to the member 0..max_amount_minor, back 0
ARGV[7] transfer_id   [A-Za-z0-9._:-]{1,64}
ARGV[8] refill_minor  integer minor units, 1..max_amount_minor: the group's refill amount
ARGV[9] remove        0 or 1: back from a member that leaves the group (settling removes it)
ARGV[10] actor        the caller's identity, recorded in the ledger
Returns {code, message, '{"amount":<credited, or given back>,"replayed":0|1,"ledger_seq":<n>}'}.
Codes: SUCCESS; INVALID_REQUEST (bad field, transfer_id reused with another payload, balance above
max_balance_minor); USER_UNKNOWN; ACCOUNT_TERMINATED; REFUSED (a member of another group, or in
another currency).
]=]

local function check_apply_transfer(keys, args)
  check_argument_count(args, 10)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    group_id = check_text(args[3], 'group_id', ID_PATTERN, 64),
    currency = check_text(args[4], 'currency', '^%u%u%u$', 3),
    direction = parse_integer(args[5], 'direction', 1, 2),
    transfer_id = check_text(args[7], 'transfer_id', ID_PATTERN, 64),
    refill_minor = parse_integer(args[8], 'refill_minor', 1, CONFIG.limits.max_amount_minor),
    remove = parse_integer(args[9], 'remove', 0, 1) == 1,
    actor = check_actor(args),
  }
  local into = request.direction == 1
  request.amount = parse_integer(args[6], 'amount', 0, into and CONFIG.limits.max_amount_minor or 0)
  if into and request.remove then
    refuse(CODE.INVALID_REQUEST, 'remove: only a transfer back from a member removes it')
  end
  request.fingerprint = redis.sha1hex(table.concat(args, '\n', 2, 9))
  local account, seq = load_for_keyed_call(keys, request)
  if seq then
    return { account = account, request = request, replayed_seq = seq }
  end
  if into and account.group_id ~= '' and account.group_id ~= request.group_id then
    refuse(CODE.REFUSED, 'account_id: a member of group ' .. account.group_id)
  end
  if account.currency ~= request.currency then
    refuse(CODE.REFUSED, 'account_id: the account is in ' .. account.currency .. ', the group in ' .. request.currency)
  end
  if account.balance + request.amount > CONFIG.limits.max_balance_minor then
    refuse(CODE.INVALID_REQUEST, 'amount: would take the balance above ' .. format_integer(CONFIG.limits.max_balance_minor))
  end
  return { account = account, request = request }
end

-- The amount of the ledger entry a replayed transfer applied as (its record holds the entry's seq).
local function applied_amount(account, ledger_key, seq)
  local entry = redis.call('LINDEX', ledger_key, tonumber(seq) - account.ledger_first_seq)
  local amount = entry and string.match(entry, '^%d+|%d+|[%w_]+|(%-?%d+)|')
  if amount == nil then
    refuse(CODE.REFUSED, 'transfer_id: its ledger entry was trimmed; settle by the ledger')
  end
  return math.abs(tonumber(amount))
end

local function receive(account, request, reference)
  local seq = queue_ledger(account, request.now_ms, 'group_transfer', request.amount, reference)
  account.group_id, account.group_refill_minor = request.group_id, request.refill_minor
  -- group money that paid a debt is spent: the holding is at most what the balance keeps
  account.group_holding = math.min(account.group_holding + request.amount, math.max(account.balance, 0))
  if request.amount > 0 then
    account.group_refill_tried_ms = 0
  end
  apply_credit_recovery(account, request.now_ms, reference, 'GROUP')
  return seq, request.amount
end

local function give_back(account, request, reference)
  local returned = 0
  if account.group_id == request.group_id then
    returned = math.min(account.group_holding, math.max(available_money(account), 0))
    account.group_holding = account.group_holding - returned
  end
  local seq = queue_ledger(account, request.now_ms, 'group_return', -returned, reference)
  if request.remove and account.group_id == request.group_id then
    account.group_id, account.group_holding, account.group_refill_minor, account.group_refill_tried_ms = '', 0, 0, 0
  end
  apply_credit_exhaustion(account, request.now_ms, reference)
  return seq, returned
end

local function apply_group_transfer(raw_keys, args)
  local keys = named_keys('apply_group_transfer', raw_keys)
  local checked, outcome = run_checked(check_apply_transfer, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  if outcome.replayed_seq then
    local amount = applied_amount(account, keys.ledger, outcome.replayed_seq)
    return reply(CODE.SUCCESS, 'replayed', '{"amount":' .. format_integer(amount) .. ',"replayed":1,"ledger_seq":'
      .. outcome.replayed_seq .. '}')
  end
  local reference = request.group_id .. ' ' .. request.transfer_id
  local seq, amount
  if request.direction == 1 then
    seq, amount = receive(account, request, reference)
  else
    seq, amount = give_back(account, request, reference)
  end
  save_account(account, keys)
  remember_applied(keys.record, request.fingerprint, seq)
  return reply(CODE.SUCCESS, '', '{"amount":' .. format_integer(amount) .. ',"replayed":0,"ledger_seq":'
    .. format_integer(seq) .. '}')
end

redis.register_function('apply_group_transfer', apply_group_transfer)
