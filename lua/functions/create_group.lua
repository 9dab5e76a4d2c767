--[=[
create_group — a shared wallet (lib/group.lua) with no money and no members yet.

KEYS[1] group         cd:{p:<n>}:group:<group_id>          hash (lib/group.lua)
KEYS[2] group_ledger  cd:{p:<n>}:group_ledger:<group_id>   list
ARGV[1] now_ms        integer, Unix ms
ARGV[2] group_id      [A-Za-z0-9._:-]{1,64}
ARGV[3] currency      ISO 4217 code; members must be in it
ARGV[4] refill_minor  integer minor units, 1..max_amount_minor: what one refill hands a member
ARGV[5] actor         the caller's identity, recorded in the ledger
Returns {code, message, <group_json>}; message 'replayed' when the group exists with the same
currency and refill (a retransmission).
Codes: SUCCESS, INVALID_REQUEST (bad field; the group exists with another currency or refill).
]=]

local function check_create_group(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    group_id = check_text(args[2], 'group_id', ID_PATTERN, 64),
    currency = check_text(args[3], 'currency', '^%u%u%u$', 3),
    refill_minor = parse_integer(args[4], 'refill_minor', 1, CONFIG.limits.max_amount_minor),
    actor = check_actor(args),
  }
  local existing = group_wallet.load(keys.group)
  if existing and (existing.currency ~= request.currency or existing.refill_minor ~= request.refill_minor) then
    refuse(CODE.INVALID_REQUEST, 'group_id: the group exists with another currency or refill_minor')
  end
  return { request = request, existing = existing }
end

local function create_group(raw_keys, args)
  local keys = named_keys('create_group', raw_keys)
  local checked, outcome = run_checked(check_create_group, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local request = outcome.request
  if outcome.existing then
    return reply(CODE.SUCCESS, 'replayed', group_wallet.json(outcome.existing, request.now_ms))
  end
  local group = group_wallet.new({ group_id = request.group_id, currency = request.currency, balance = 0,
    refill_minor = request.refill_minor, billing_cycle_day = cycle_day_of(request.now_ms),
    created_at_ms = request.now_ms, ledger_seq = 0, ledger_first_seq = 1, ledger_carried = 0, ledger_hash = '',
    ledger_trimmed_hash = '', actor = request.actor })
  queue_ledger(group, request.now_ms, 'group_created', 0, request.currency .. ' refill ' .. format_integer(request.refill_minor), true)
  group_wallet.save(group, keys.group, keys.group_ledger)
  return reply(CODE.SUCCESS, '', group_wallet.json(group, request.now_ms))
end

redis.register_function('create_group', create_group)
