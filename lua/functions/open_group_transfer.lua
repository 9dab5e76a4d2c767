--[=[
open_group_transfer — the first call of a transfer between a shared wallet and a member (lib/group.lua):
to a member (direction 1), the group grants what its balance and the member's cap for the billing
cycle allow, up to the amount asked, and debits it at once (ledger 'allocation'); back from a member
(direction 2, a return or the member leaving), nothing moves until settle_group_transfer says how much
came back. Either way the transfer is pending until settled, in the group hash and the partition's
pending index, where the sweeper finds one a caller left half done.

KEYS[1] group          cd:{p:<n>}:group:<group_id>                           hash (lib/group.lua)
KEYS[2] group_ledger   cd:{p:<n>}:group_ledger:<group_id>                    list
KEYS[3] group_pending  cd:{p:<n>}:group_pending                              zset '<group_id> <transfer_id>' by opened ms
KEYS[4] group_record   cd:{p:<n>}:group_record:<group_id>/<idempotency_key>  string: the transfer settled (key = transfer_id)
ARGV[1] now_ms       integer, Unix ms
ARGV[2] group_id     [A-Za-z0-9._:-]{1,64}
ARGV[3] account_id   [A-Za-z0-9._:-]{1,64}: a member
ARGV[4] direction    integer 1 (to the member) or 2 (back from it)
ARGV[5] amount       integer minor units: to the member 1..max_amount_minor (asked), back 0
ARGV[6] transfer_id  [A-Za-z0-9._:-]{1,64}, unique per group
ARGV[7] remove       0 or 1: back from a member that leaves (settling removes it); 0 to the member
ARGV[8] actor        the caller's identity, recorded in the ledger
Returns {code, message, '{"amount":<granted, or 0 back>,"replayed":0|1,"settled":0|1}'}: replayed for a
transfer already open (its grant), settled for one already settled; amount 0 to the member: nothing
granted, nothing written.
Codes: SUCCESS, INVALID_REQUEST (bad field, transfer_id used for another transfer), USER_UNKNOWN (no
such group, or the account is no member), REFUSED (another transfer of the member is pending).
]=]

local function check_open_transfer(keys, args)
  check_argument_count(args, 8)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    group_id = check_text(args[2], 'group_id', ID_PATTERN, 64),
    account_id = check_text(args[3], 'account_id', ID_PATTERN, 64),
    direction = parse_integer(args[4], 'direction', 1, 2),
    transfer_id = check_text(args[6], 'transfer_id', ID_PATTERN, 64),
    remove = parse_integer(args[7], 'remove', 0, 1) == 1,
    actor = check_actor(args),
  }
  local into = request.direction == 1
  request.amount = parse_integer(args[5], 'amount', into and 1 or 0, into and CONFIG.limits.max_amount_minor or 0)
  if into and request.remove then
    refuse(CODE.INVALID_REQUEST, 'remove: only a transfer back from a member removes it')
  end
  local group = group_wallet.load_existing(keys.group)
  local settled = applied_seq(keys.group_record, group_wallet.transfer_fingerprint(request.transfer_id)) ~= nil
  local pending = group.pending[request.transfer_id]
  if pending and (pending.account_id ~= request.account_id or pending.direction ~= request.direction) then
    refuse(CODE.INVALID_REQUEST, 'transfer_id: already used for another transfer')
  end
  if not settled and not pending then
    if group.members[request.account_id] == nil then
      refuse(CODE.USER_UNKNOWN, 'account_id: not a member of the group')
    end
    for other_id, other in pairs(group.pending) do
      if other.account_id == request.account_id then
        refuse(CODE.REFUSED, 'account_id: transfer ' .. other_id .. ' of this member is pending')
      end
    end
  end
  return { group = group, request = request, settled = settled, pending = pending }
end

local function transfer_answer(amount, replayed, settled)
  return '{"amount":' .. format_integer(amount) .. ',"replayed":' .. (replayed and 1 or 0) .. ',"settled":'
    .. (settled and 1 or 0) .. '}'
end

-- To a member: what the group's balance and the member's cap left in the cycle allow, at most asked.
local function grant_to_member(group, request)
  local member = group_wallet.member_now(group, request.account_id, request.now_ms)
  local cap_left = member.cap == 0 and group.balance or member.cap - member.allocated -- cap 0: none
  local granted = math.max(0, math.min(request.amount, group.balance, cap_left))
  if granted > 0 then
    member.allocated = member.allocated + granted
    group_wallet.put_member(group, request.account_id, member)
    queue_ledger(group, request.now_ms, 'allocation', -granted, request.account_id .. ' ' .. request.transfer_id, true)
  end
  return granted
end

local function open_group_transfer(raw_keys, args)
  local keys = named_keys('open_group_transfer', raw_keys)
  local checked, outcome = run_checked(check_open_transfer, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local group, request = outcome.group, outcome.request
  if outcome.settled or outcome.pending then
    return reply(CODE.SUCCESS, 'replayed', transfer_answer(outcome.pending and outcome.pending.amount or 0, true,
      outcome.settled))
  end
  group.actor = request.actor
  local amount = request.direction == 1 and grant_to_member(group, request) or 0
  if request.direction == 1 and amount == 0 then
    return reply(CODE.SUCCESS, '', transfer_answer(0, false, false))
  end
  group_wallet.set_pending(group, request.transfer_id, { direction = request.direction, account_id = request.account_id,
    amount = amount, opened_ms = request.now_ms, remove = request.remove })
  group_wallet.save(group, keys.group, keys.group_ledger)
  redis.call('ZADD', keys.group_pending, request.now_ms, request.group_id .. ' ' .. request.transfer_id)
  return reply(CODE.SUCCESS, '', transfer_answer(amount, false, false))
end

redis.register_function('open_group_transfer', open_group_transfer)
