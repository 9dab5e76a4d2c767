--[=[
record_agent_payment — one payment agent's (terminal network's) day book: claims a payment under the
agent's daily limit, then records what became of it. The money moves in top_up / adjust on the
account (creditd/payments/agents.py calls them between the steps); this book makes the daily limit
atomic and answers a repeated transaction id with its first outcome, for as long as it is kept.
A claim repeated with the same account and amount is answered with the stored entry (replayed 1);
with another account or amount it is refused. 'failed' and 'cancelled' give the amount back to the
day's limit.

KEYS[1] agent_day  cd:{p:<n>}:agent_day:<agent_id>/<day>   hash: 'total' -> minor units claimed and
                   not given back; '<transaction_id>' -> '<state>|<account_id>|<amount>|<paid_at_ms>|
                   <ledger_seq>|<updated_at_ms>' (state: claimed, applied, failed, cancelled)
ARGV[1] now_ms             integer, Unix ms
ARGV[2] action             claim | applied | failed | cancelled
ARGV[3] transaction_id     [A-Za-z0-9._:-]{1,64}: the agent's own id of the payment
ARGV[4] account_id         [A-Za-z0-9._:-]{1,64}
ARGV[5] amount             integer minor units, 1..max_amount_minor
ARGV[6] paid_at_ms         integer, Unix ms: when the agent took the money (its day is the key's)
ARGV[7] daily_limit_minor  integer minor units, 1..max_balance_minor (claim only)
ARGV[8] retention_s        integer seconds, 86400..366 days: the day book's life after its last write
ARGV[9] ledger_seq         integer >= 0: the top-up's ledger entry (applied), else 0
ARGV[10] actor             the caller's identity (not stored)
Returns {code, message, '{"state":"<state>","account_id":"…","amount":<n>,"paid_at_ms":<n>,
  "ledger_seq":<n>,"updated_at_ms":<n>,"replayed":0|1,"day_total":<n>}'}; message 'replayed' when the
  claim was already made.
Codes: SUCCESS; INVALID_REQUEST (bad field; the transaction id already used with another account or
amount); REFUSED (over the daily limit; a step the entry's state does not allow: applied before a
claim, cancelling what was not applied); USER_UNKNOWN (applied/failed/cancelled without a claim).
]=]

local AGENT_ACTIONS = { claim = true, applied = true, failed = true, cancelled = true }
-- From each state, the actions it allows and the state they lead to.
local AGENT_STEPS = {
  claimed = { applied = 'applied', failed = 'failed' },
  applied = { applied = 'applied', cancelled = 'cancelled' },
  failed = { failed = 'failed' },
  cancelled = { cancelled = 'cancelled' },
}

local function parse_agent_payment(args)
  check_argument_count(args, 10)
  local limits = CONFIG.limits
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    action = args[2],
    transaction_id = check_text(args[3], 'transaction_id', ID_PATTERN, 64),
    account_id = check_text(args[4], 'account_id', ID_PATTERN, 64),
    amount = parse_integer(args[5], 'amount', 1, limits.max_amount_minor),
    paid_at_ms = parse_integer(args[6], 'paid_at_ms', 0, MAX_EXACT_INTEGER),
    daily_limit = parse_integer(args[7], 'daily_limit_minor', 1, limits.max_balance_minor),
    retention_s = parse_integer(args[8], 'retention_s', 86400, 366 * 86400),
    ledger_seq = parse_integer(args[9], 'ledger_seq', 0, MAX_EXACT_INTEGER),
    actor = check_actor(args),
  }
  if not AGENT_ACTIONS[request.action] then
    refuse(CODE.INVALID_REQUEST, 'action: claim, applied, failed or cancelled')
  end
  if request.transaction_id == 'total' then
    refuse(CODE.INVALID_REQUEST, 'transaction_id: "total" is reserved')
  end
  return request
end

local function split_entry(text)
  local state, account_id, amount, paid_at_ms, ledger_seq, updated_at_ms =
    string.match(text, '^(%a+)|([^|]+)|(%d+)|(%d+)|(%d+)|(%d+)$')
  assert(state, 'agent_day entry malformed: ' .. text)
  return {
    state = state,
    account_id = account_id,
    amount = tonumber(amount),
    paid_at_ms = tonumber(paid_at_ms),
    ledger_seq = tonumber(ledger_seq),
    updated_at_ms = tonumber(updated_at_ms),
  }
end

local function join_entry(entry)
  return table.concat({ entry.state, entry.account_id, format_integer(entry.amount),
    format_integer(entry.paid_at_ms), format_integer(entry.ledger_seq), format_integer(entry.updated_at_ms) }, '|')
end

local function check_agent_payment(keys, args)
  local request = parse_agent_payment(args)
  local stored = redis.call('HGET', keys.agent_day, request.transaction_id)
  local entry = stored and split_entry(stored)
  if entry and (entry.account_id ~= request.account_id or entry.amount ~= request.amount) then
    refuse(CODE.INVALID_REQUEST, 'transaction_id: already used for another account or amount')
  end
  local total = tonumber(redis.call('HGET', keys.agent_day, 'total') or '0')
  if request.action == 'claim' then
    if not entry and total + request.amount > request.daily_limit then
      refuse(CODE.REFUSED, 'amount: over the agent\'s daily limit of ' .. format_integer(request.daily_limit)
        .. ' (' .. format_integer(total) .. ' used)')
    end
    return { request = request, entry = entry, total = total }
  end
  if not entry then
    refuse(CODE.USER_UNKNOWN, 'transaction_id: no such payment on that day')
  end
  if not AGENT_STEPS[entry.state][request.action] then
    refuse(CODE.REFUSED, 'transaction_id: the payment is ' .. entry.state .. ', it cannot become ' .. request.action)
  end
  return { request = request, entry = entry, total = total }
end

local function agent_payment_json(entry, replayed, total)
  return '{"state":' .. json_string(entry.state) .. ',"account_id":' .. json_string(entry.account_id)
    .. ',"amount":' .. format_integer(entry.amount) .. ',"paid_at_ms":' .. format_integer(entry.paid_at_ms)
    .. ',"ledger_seq":' .. format_integer(entry.ledger_seq) .. ',"updated_at_ms":' .. format_integer(entry.updated_at_ms)
    .. ',"replayed":' .. replayed .. ',"day_total":' .. format_integer(total) .. '}'
end

local function record_agent_payment(raw_keys, args)
  local keys = named_keys('record_agent_payment', raw_keys)
  local checked, outcome = run_checked(check_agent_payment, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local request, entry, total = outcome.request, outcome.entry, outcome.total
  if request.action == 'claim' and entry then
    return reply(CODE.SUCCESS, 'replayed', agent_payment_json(entry, 1, total))
  end
  if entry and entry.state == AGENT_STEPS[entry.state][request.action] then
    return reply(CODE.SUCCESS, 'replayed', agent_payment_json(entry, 1, total))
  end
  if request.action == 'claim' then
    entry = { account_id = request.account_id, amount = request.amount, paid_at_ms = request.paid_at_ms, ledger_seq = 0 }
    total = total + request.amount
  elseif request.action == 'failed' or request.action == 'cancelled' then
    total = total - entry.amount
  end
  entry.state = request.action == 'claim' and 'claimed' or request.action
  entry.updated_at_ms = request.now_ms
  if request.action == 'applied' then
    entry.ledger_seq = request.ledger_seq
  end
  redis.call('HSET', keys.agent_day, request.transaction_id, join_entry(entry), 'total', format_integer(total))
  redis.call('EXPIRE', keys.agent_day, request.retention_s)
  return reply(CODE.SUCCESS, '', agent_payment_json(entry, 0, total))
end

redis.register_function('record_agent_payment', record_agent_payment)
