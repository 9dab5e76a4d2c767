--[=[
Saving an account: its ledger appends, the account (packed, whole), the partition's event
outbox, gateway notifications, statistics and the time-driven index, in one step after every check.
uses: codes, numbers, account, lifecycle, bundle_usage, ledger
]=]
-- The partition's statistics (cd:{p:<n>}:stats hash), read by the metrics endpoint: reserved_minor,
-- accounts_created, and entered:<STATUS> per status transition.
local function count_statistics(account, stats_key)
  local reserved_delta = account.reserved - account.loaded_reserved
  if reserved_delta ~= 0 then
    redis.call('HINCRBY', stats_key, 'reserved_minor', format_integer(reserved_delta))
  end
  for _, status in ipairs(account.pending_transitions) do
    redis.call('HINCRBY', stats_key, 'entered:' .. STATUS_NAME[status], 1)
  end
end

local function append_event(events_key, fields)
  redis.call('XADD', events_key, 'MAXLEN', '~', CONFIG.limits.max_events_per_partition, '*', unpack(fields))
end

-- After a status change (or a call that set account.notification = {kind, reason}, such as a bundle
-- purchase), one notification per open session of the account, for its gateway.
local function notify_gateways(account, sessions_key, events_key, now_ms)
  local kind, reason
  local status = account.pending_transitions[#account.pending_transitions]
  if status ~= nil then
    kind, reason = NOTIFICATION_OF_STATUS[status], EVENT_OF_STATUS[status] .. ' ' .. account.status_reason
  elseif account.notification ~= nil then
    kind, reason = account.notification[1], account.notification[2]
  else
    return
  end
  for _, member in ipairs(redis.call('SMEMBERS', sessions_key)) do
    local gateway_id, session_id = string.match(member, '^(%S+) (.+)$')
    append_event(events_key, { 'kind', kind, 'account_id', account.account_id, 'time_ms', format_integer(now_ms),
      'detail', reason, 'gateway_id', gateway_id, 'session_id', session_id })
  end
end

-- Writes the account whole, packed (lib/account.lua): one SET replaces what was stored, an older
-- version's array, map or hash too. Its buckets' values follow its fields.
local function write_account(account, account_key)
  local count, first, pieces = 0, '', nil
  for _, bucket in pairs(account.buckets) do
    count = count + 1
    if count == 1 then
      first = pack_bucket(bucket)
    else -- no list for the common one bucket or none
      pieces = pieces or { first }
      pieces[count] = pack_bucket(bucket)
    end
  end
  redis.call('SET', account_key, ACCOUNT_CODEC.pack(account, count, pieces and table.concat(pieces) or first))
end

-- The partition's due index (see lib/lifecycle.lua) and blacklist (terminated ids, refused by
-- create_account).
local function index_account(account, due_key, blacklist_key)
  local due_ms = next_due_ms(account) or 0
  if due_ms ~= account.indexed_due_ms then
    if due_ms > 0 then
      redis.call('ZADD', due_key, due_ms, account.account_id)
    else
      redis.call('ZREM', due_key, account.account_id)
    end
    account.indexed_due_ms = due_ms
  end
  if account.status == STATUS.TERMINATED and #account.pending_transitions > 0 then
    redis.call('SADD', blacklist_key, account.account_id)
  end
end

-- Whether the call changed anything save_account would write.
local function account_changed(account)
  return #account.pending_ledger > 0 or #account.pending_events > 0 or next(account.dirty_buckets) ~= nil
    or #account.removed_buckets > 0 or account.reminders_sent ~= account.loaded_reminders_sent
end

-- Writes everything the call changed: ledger entries first (they carry the sequence numbers), then
-- the account, the events, the gateways' notifications, the statistics and the due index.
-- Nothing before this point has written. Buckets that expired by account.now_ms (set by
-- apply_due_changes) leave here too, after the call released what it held of them.
-- k names the keys: account, sessions, ledger, events, stats, due, blacklist.
local function save_account(account, k)
  drop_spent_bonus(account)
  if account.now_ms and next(account.buckets) ~= nil then -- most accounts have no bucket to expire or count
    expire_buckets(account, account.now_ms)
    queue_bucket_usage_events(account, account.now_ms)
  end
  assert_account_invariants(account)
  append_ledger(account, k.ledger)
  write_account(account, k.account)
  -- Each event carries the balance and available money it left, so that a notice tells what was true
  -- at the event, not what is true when it is delivered (a retry, quiet hours).
  if account.pending_events[1] ~= nil then -- most saves have none: no balance to format for them
    local balance, available = format_integer(account.balance), format_integer(available_money(account))
    for _, event in ipairs(account.pending_events) do
      append_event(k.events, { 'kind', event[2], 'account_id', account.account_id,
        'time_ms', format_integer(event[1]), 'detail', event[3], 'balance', balance, 'available', available })
    end
  end
  notify_gateways(account, k.sessions, k.events, account.notification_ms or account.status_since_ms)
  count_statistics(account, k.stats)
  index_account(account, k.due, k.blacklist)
end
