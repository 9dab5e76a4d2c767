--[=[
Shared wallets (docs/design.md, Shared wallets): a group's money and members live in the group's own
partition; money reaches a member, and comes back, only by transfers of two idempotent calls each
(open and settle on the group's side, apply on the member's), never one call on two slots.

Group hash (cd:{p:<n>}:group:<group_id>, n the CRC of the group id): group_id, currency, balance,
refill_minor (what one refill hands a member), billing_cycle_day, created_at_ms, and the ledger fields
of an account (ledger_seq, ledger_hash, ledger_first_seq, ledger_carried, ledger_trimmed_hash), and
  member:<account_id>   = '<cap_minor>|<cycle>|<allocated_minor>' (allocated in billing cycle <cycle>;
                          cap 0: none)
  pending:<transfer_id> = '<direction 1 in|2 out>|<account_id>|<amount_minor>|<opened_at_ms>|<remove 0|1>'
Group ledger (cd:{p:<n>}:group_ledger:<group_id>): entries as an account's (lib/account.lua).
Pending index (cd:{p:<n>}:group_pending): zset '<group_id> <transfer_id>' by opened ms: what the
sweeper completes when a caller stopped between the calls of a transfer.
The member's side is kept in its account (lib/account.lua): group_id, group_holding (the part of
its balance the group handed over and it has not spent: own money is spent first, queue_ledger),
group_refill_minor and group_refill_tried_ms (lib/lifecycle.lua: when it wants a refill).
uses: codes, numbers, checks, calendar, ledger
]=]
-- One table, not a local per function: the library's chunk is near Lua 5.1's 200 locals.
local group_wallet = {}
group_wallet.NUMBER_FIELDS = { 'balance', 'refill_minor', 'billing_cycle_day', 'created_at_ms', 'ledger_seq',
  'ledger_first_seq', 'ledger_carried' }
group_wallet.TEXT_FIELDS = { 'group_id', 'currency', 'ledger_hash', 'ledger_trimmed_hash' }

function group_wallet.decode_field(group, field, value)
  local account_id = string.match(field, '^member:(.+)$')
  if account_id then
    local cap, cycle, allocated = string.match(value, '^(%d+)|(%d+)|(%d+)$')
    assert(cap, 'corrupt group member')
    group.members[account_id] = { cap = tonumber(cap), cycle = tonumber(cycle), allocated = tonumber(allocated) }
    return
  end
  local transfer_id = string.match(field, '^pending:(.+)$')
  if transfer_id then
    local direction, member, amount, opened_ms, remove = string.match(value, '^([12])|([^|]+)|(%d+)|(%d+)|([01])$')
    assert(direction, 'corrupt pending transfer')
    group.pending[transfer_id] = { direction = tonumber(direction), account_id = member, amount = tonumber(amount),
      opened_ms = tonumber(opened_ms), remove = remove == '1' }
    return
  end
  group[field] = value
end

-- A group with the scalar fields given, shaped like an account for queue_ledger and append_ledger
-- (group_holding: a group holds no group's money).
function group_wallet.new(fields)
  fields.members, fields.pending, fields.changed, fields.removed = {}, {}, {}, {}
  fields.pending_ledger, fields.group_holding = {}, 0
  return fields
end

-- The group, or nil.
function group_wallet.load(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then
    return nil
  end
  local group = group_wallet.new({})
  for index = 1, #flat, 2 do
    group_wallet.decode_field(group, flat[index], flat[index + 1])
  end
  for _, field in ipairs(group_wallet.NUMBER_FIELDS) do
    group[field] = tonumber(group[field])
  end
  return group
end

function group_wallet.load_existing(key)
  local group = group_wallet.load(key)
  if group == nil then
    refuse(CODE.USER_UNKNOWN, 'group_id: unknown group')
  end
  return group
end

function group_wallet.put_member(group, account_id, member)
  group.members[account_id] = member
  group.changed['member:' .. account_id] = table.concat({ format_integer(member.cap), member.cycle,
    format_integer(member.allocated) }, '|')
end

function group_wallet.remove_field(group, field)
  group.changed[field] = nil
  group.removed[#group.removed + 1] = field
end

function group_wallet.set_pending(group, transfer_id, pending)
  group.pending[transfer_id] = pending
  group.changed['pending:' .. transfer_id] = table.concat({ pending.direction, pending.account_id,
    format_integer(pending.amount), format_integer(pending.opened_ms), pending.remove and '1' or '0' }, '|')
end

-- The group record of a settled transfer ('<this>|<ledger seq>', key = the transfer id): a top-up's
-- key that happens to equal it is refused as used with another payload, never taken for it.
function group_wallet.transfer_fingerprint(transfer_id)
  return redis.sha1hex('transfer\n' .. transfer_id)
end

-- What a member was allocated in the billing cycle of now_ms (a new cycle starts from nothing).
function group_wallet.allocated_in_cycle(group, member, now_ms)
  return member.cycle == billing_cycle_of(now_ms, group.billing_cycle_day) and member.allocated or 0
end

-- The member moved on to the billing cycle of now_ms (its allocation from nothing in a new cycle),
-- for a call that changes its allocation.
function group_wallet.member_now(group, account_id, now_ms)
  local member = group.members[account_id]
  member.allocated = group_wallet.allocated_in_cycle(group, member, now_ms)
  member.cycle = billing_cycle_of(now_ms, group.billing_cycle_day)
  return member
end

function group_wallet.save(group, group_key, ledger_key)
  assert(group.balance >= 0, 'group balance is negative')
  append_ledger(group, ledger_key)
  local fields = {}
  for _, field in ipairs(group_wallet.NUMBER_FIELDS) do
    fields[#fields + 1] = field
    fields[#fields + 1] = format_integer(group[field])
  end
  for _, field in ipairs(group_wallet.TEXT_FIELDS) do
    fields[#fields + 1] = field
    fields[#fields + 1] = group[field]
  end
  for field, value in pairs(group.changed) do
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
  redis.call('HSET', group_key, unpack(fields))
  if #group.removed > 0 then
    redis.call('HDEL', group_key, unpack(group.removed))
  end
end

-- The group as JSON (creditd/store/replies.py GroupRecord); now_ms decides the billing cycle.
function group_wallet.json(group, now_ms)
  local members, pending = {}, {}
  for account_id, member in pairs(group.members) do
    members[#members + 1] = '[' .. json_string(account_id) .. ',' .. format_integer(member.cap) .. ','
      .. format_integer(group_wallet.allocated_in_cycle(group, member, now_ms)) .. ']'
  end
  for transfer_id, p in pairs(group.pending) do
    pending[#pending + 1] = '[' .. json_string(transfer_id) .. ',' .. p.direction .. ',' .. json_string(p.account_id)
      .. ',' .. format_integer(p.amount) .. ',' .. format_integer(p.opened_ms) .. ',' .. (p.remove and 1 or 0) .. ']'
  end
  table.sort(members)
  table.sort(pending)
  return '{"group_id":' .. json_string(group.group_id) .. ',"currency":' .. json_string(group.currency)
    .. ',"balance":' .. format_integer(group.balance) .. ',"refill_minor":' .. format_integer(group.refill_minor)
    .. ',"billing_cycle_day":' .. group.billing_cycle_day .. ',"ledger_seq":' .. format_integer(group.ledger_seq)
    .. ',"members":[' .. table.concat(members, ',') .. '],"pending":[' .. table.concat(pending, ',') .. ']}'
end
