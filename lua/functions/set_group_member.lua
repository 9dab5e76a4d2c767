--[=[
set_group_member — makes an account a member of a shared wallet with a cap per billing cycle, or
changes its cap (what it was allocated in the cycle so far is kept). The member's own side learns
of the group with its first transfer (apply_group_transfer; the server makes one of 0 at once).

KEYS[1] group         cd:{p:<n>}:group:<group_id>          hash (lib/group.lua)
KEYS[2] group_ledger  cd:{p:<n>}:group_ledger:<group_id>   list
ARGV[1] now_ms      integer, Unix ms
ARGV[2] group_id    [A-Za-z0-9._:-]{1,64}
ARGV[3] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[4] cap_minor   integer minor units, 0..max_amount_minor: at most this much per billing cycle (0: no cap)
ARGV[5] actor       the caller's identity, recorded in the ledger
Returns {code, message, <group_json>}; message 'unchanged' when the cap already was this.
Codes: SUCCESS, INVALID_REQUEST (bad field), USER_UNKNOWN (no such group), RESOURCES_EXCEEDED
(the group has max_group_members members).
]=]

local function check_set_group_member(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    group_id = check_text(args[2], 'group_id', ID_PATTERN, 64),
    account_id = check_text(args[3], 'account_id', ID_PATTERN, 64),
    cap_minor = parse_integer(args[4], 'cap_minor', 0, CONFIG.limits.max_amount_minor),
    actor = check_actor(args),
  }
  local group = group_wallet.load_existing(keys.group)
  if group.members[request.account_id] == nil then
    local count = count_keys(group.members)
    if count >= CONFIG.limits.max_group_members then
      refuse(CODE.RESOURCES_EXCEEDED, 'account_id: the group already has ' .. count .. ' members')
    end
  end
  return { group = group, request = request }
end

local function set_group_member(raw_keys, args)
  local keys = named_keys('set_group_member', raw_keys)
  local checked, outcome = run_checked(check_set_group_member, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local group, request = outcome.group, outcome.request
  local member = group.members[request.account_id]
  if member and member.cap == request.cap_minor then
    return reply(CODE.SUCCESS, 'unchanged', group_wallet.json(group, request.now_ms))
  end
  member = member or { cycle = billing_cycle_of(request.now_ms, group.billing_cycle_day), allocated = 0 }
  member.cap = request.cap_minor
  group_wallet.put_member(group, request.account_id, member)
  group.actor = request.actor
  queue_ledger(group, request.now_ms, 'member', 0, request.account_id .. ' cap ' .. format_integer(request.cap_minor), true)
  group_wallet.save(group, keys.group, keys.group_ledger)
  return reply(CODE.SUCCESS, '', group_wallet.json(group, request.now_ms))
end

redis.register_function('set_group_member', set_group_member)
