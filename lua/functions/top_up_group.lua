--[=[
top_up_group — credits money to a shared wallet, at most once per idempotency key.

KEYS[1] group         cd:{p:<n>}:group:<group_id>                           hash (lib/group.lua)
KEYS[2] group_ledger  cd:{p:<n>}:group_ledger:<group_id>                    list
KEYS[3] group_record  cd:{p:<n>}:group_record:<group_id>/<idempotency_key>  string '<fingerprint>|<ledger_seq>'
ARGV[1] now_ms           integer, Unix ms
ARGV[2] group_id         [A-Za-z0-9._:-]{1,64}
ARGV[3] amount_minor    integer minor units, 1..max_amount_minor
ARGV[4] channel          [A-Za-z0-9._:-]{1,64}
ARGV[5] idempotency_key  [A-Za-z0-9._:-]{1,64}, unique per group
ARGV[6] actor            the caller's identity, recorded in the ledger
Returns {code, message, '{"group":<group_json>,"replayed":0|1,"ledger_seq":<n>}'}.
Codes: SUCCESS; INVALID_REQUEST (bad field, key reused with another payload, balance would exceed
max_balance_minor); USER_UNKNOWN (no such group).
]=]

local function check_top_up_group(keys, args)
  check_argument_count(args, 6)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    group_id = check_text(args[2], 'group_id', ID_PATTERN, 64),
    amount = parse_integer(args[3], 'amount', 1, CONFIG.limits.max_amount_minor),
    channel = check_text(args[4], 'channel', ID_PATTERN, 64),
    idempotency_key = check_text(args[5], 'idempotency_key', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  request.fingerprint = redis.sha1hex(table.concat(args, '\n', 2, 5))
  local group = group_wallet.load_existing(keys.group)
  local seq = applied_seq(keys.group_record, request.fingerprint)
  if seq == nil and group.balance + request.amount > CONFIG.limits.max_balance_minor then
    refuse(CODE.INVALID_REQUEST, 'amount: would take the balance above ' .. format_integer(CONFIG.limits.max_balance_minor))
  end
  return { group = group, request = request, replayed_seq = seq }
end

local function top_up_group(raw_keys, args)
  local keys = named_keys('top_up_group', raw_keys)
  local checked, outcome = run_checked(check_top_up_group, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local group, request = outcome.group, outcome.request
  local seq, replayed = outcome.replayed_seq, 1
  if seq == nil then
    group.actor, replayed = request.actor, 0
    seq = queue_ledger(group, request.now_ms, 'topup', request.amount, request.channel .. ' ' .. request.idempotency_key, true)
    group_wallet.save(group, keys.group, keys.group_ledger)
    remember_applied(keys.group_record, request.fingerprint, seq)
  end
  return reply(CODE.SUCCESS, replayed == 1 and 'replayed' or '', '{"group":' .. group_wallet.json(group, request.now_ms)
    .. ',"replayed":' .. replayed .. ',"ledger_seq":' .. seq .. '}')
end

redis.register_function('top_up_group', top_up_group)
