--[=[
settle_group_transfer — the last call of a transfer (lib/group.lua), after the member's side applied it
(apply_group_transfer): to a member, amount is what was granted (or 0: the member's side refused it, a
closed account, and the grant goes back to the group, ledger 'allocation_cancelled'); back from a
member, amount is what came back, credited to the group (ledger 'return') and taken off what the
member was allocated in the cycle; a member leaving is removed. The transfer is then remembered as
settled for topup_key_retention_s (a repeat answers 'replayed').

KEYS[1] group          cd:{p:<n>}:group:<group_id>                           hash (lib/group.lua)
KEYS[2] group_ledger   cd:{p:<n>}:group_ledger:<group_id>                    list
KEYS[3] group_pending  cd:{p:<n>}:group_pending                              zset '<group_id> <transfer_id>' by opened ms
KEYS[4] group_record   cd:{p:<n>}:group_record:<group_id>/<idempotency_key>  string '<fingerprint>|<ledger_seq>' (key = transfer_id)
ARGV[1] now_ms       integer, Unix ms
ARGV[2] group_id     [A-Za-z0-9._:-]{1,64}
ARGV[3] transfer_id  [A-Za-z0-9._:-]{1,64}: an open transfer
ARGV[4] amount_minor integer minor units, 0..max_amount_minor (see above)
ARGV[5] actor        the caller's identity, recorded in the ledger
Returns {code, message, <group_json>}; message 'replayed' for a transfer already settled.
Codes: SUCCESS, INVALID_REQUEST (bad field; to a member, an amount other than the grant or 0),
USER_UNKNOWN (no such group, or no such open transfer).
]=]

local function check_settle_transfer(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    group_id = check_text(args[2], 'group_id', ID_PATTERN, 64),
    transfer_id = check_text(args[3], 'transfer_id', ID_PATTERN, 64),
    amount = parse_integer(args[4], 'amount', 0, CONFIG.limits.max_amount_minor),
    actor = check_actor(args),
  }
  request.fingerprint = group_wallet.transfer_fingerprint(request.transfer_id)
  local group = group_wallet.load_existing(keys.group)
  if applied_seq(keys.group_record, request.fingerprint) then
    return { group = group, request = request, settled = true }
  end
  local pending = group.pending[request.transfer_id]
  if pending == nil then
    refuse(CODE.USER_UNKNOWN, 'transfer_id: no such open transfer')
  end
  if pending.direction == 1 and request.amount ~= pending.amount and request.amount ~= 0 then
    refuse(CODE.INVALID_REQUEST, 'amount: the transfer granted ' .. format_integer(pending.amount) .. ', or 0 to cancel it')
  end
  return { group = group, request = request, pending = pending }
end

-- Money back in the group: credited, and no longer counted as allocated to the member this cycle.
local function take_back(group, pending, amount, kind, request)
  if group.members[pending.account_id] then
    local member = group_wallet.member_now(group, pending.account_id, request.now_ms)
    member.allocated = math.max(0, member.allocated - amount)
    group_wallet.put_member(group, pending.account_id, member)
  end
  if amount > 0 then
    queue_ledger(group, request.now_ms, kind, amount, pending.account_id .. ' ' .. request.transfer_id, true)
  end
end

local function settle_group_transfer(raw_keys, args)
  local keys = named_keys('settle_group_transfer', raw_keys)
  local checked, outcome = run_checked(check_settle_transfer, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local group, request, pending = outcome.group, outcome.request, outcome.pending
  if outcome.settled then
    return reply(CODE.SUCCESS, 'replayed', group_wallet.json(group, request.now_ms))
  end
  group.actor = request.actor
  if pending.direction == 1 and request.amount == 0 then
    take_back(group, pending, pending.amount, 'allocation_cancelled', request)
  elseif pending.direction == 2 then
    take_back(group, pending, request.amount, 'return', request)
  end
  if pending.remove then
    group.members[pending.account_id] = nil
    group_wallet.remove_field(group, 'member:' .. pending.account_id)
    queue_ledger(group, request.now_ms, 'member', 0, pending.account_id .. ' removed', true)
  end
  group.pending[request.transfer_id] = nil
  group_wallet.remove_field(group, 'pending:' .. request.transfer_id)
  group_wallet.save(group, keys.group, keys.group_ledger)
  redis.call('ZREM', keys.group_pending, request.group_id .. ' ' .. request.transfer_id)
  remember_applied(keys.group_record, request.fingerprint, group.ledger_seq)
  return reply(CODE.SUCCESS, '', group_wallet.json(group, request.now_ms))
end

redis.register_function('settle_group_transfer', settle_group_transfer)
