--[=[
Saving an account: the ledger appends (with retention and the hash chain), the account hash, the
partition's outbox, gateway notifications, statistics and the time-driven index; the card as JSON.
uses: codes, numbers, account, bonus, lifecycle, credit, bundle_usage
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

-- Keeps the newest max_ledger_entries entries; what is trimmed is carried in the hash.
local function trim_ledger(account, ledger_key)
  local excess = account.ledger_seq - account.ledger_first_seq + 1 - CONFIG.limits.max_ledger_entries
  if excess <= 0 then
    return
  end
  for _, entry in ipairs(redis.call('LRANGE', ledger_key, 0, excess - 1)) do
    local amount, hash = string.match(entry, '^%d+|%d+|[%w_]+|(%-?%d+)|%-?%d+|[^|]*|(%x+)|')
    assert(amount, 'corrupt ledger entry')
    account.ledger_carried = account.ledger_carried + tonumber(amount)
    account.ledger_trimmed_hash = hash
  end
  redis.call('LTRIM', ledger_key, excess, -1)
  account.ledger_first_seq = account.ledger_first_seq + excess
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

local function append_ledger(account, ledger_key)
  for _, entry in ipairs(account.pending_ledger) do
    assert(account.actor, 'a ledger entry without an actor')
    local head = table.concat({ format_integer(entry[1]), format_integer(entry[2]), entry[3],
      format_integer(entry[4]), format_integer(entry[5]), account.actor }, '|')
    local hash = redis.sha1hex(account.ledger_hash .. '\n' .. head .. '|' .. entry[6])
    redis.call('RPUSH', ledger_key, head .. '|' .. hash .. '|' .. entry[6])
    account.ledger_hash = hash
  end
  trim_ledger(account, ledger_key)
end

-- Writes the account's saved fields that differ from what was read (ACCOUNT_CODEC.changed: all of them
-- for a new account, and those the hash lacked), its changed buckets, and deletes its removed ones.
-- Most calls move two or three fields of some twenty; writing only those keeps the call's Redis time
-- down (loadtest.redis_time). Numbers are written as integers.
local function write_account_hash(account, account_key)
  local fields = {}
  ACCOUNT_CODEC.changed(account, fields)
  for bucket_id in pairs(account.dirty_buckets) do
    fields[#fields + 1] = BUCKET_PREFIX .. bucket_id
    fields[#fields + 1] = encode_bucket(account.buckets[bucket_id])
  end
  if #fields > 0 then
    redis.call('HSET', account_key, unpack(fields))
  end
  for _, bucket_id in ipairs(account.removed_buckets) do
    redis.call('HDEL', account_key, BUCKET_PREFIX .. bucket_id)
  end
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
-- the account hash, the events, the gateways' notifications, the statistics and the due index.
-- Nothing before this point has written. Buckets that expired by account.now_ms (set by
-- apply_due_changes) leave here too, after the call released what it held of them.
-- k names the keys: account, sessions, ledger, events, stats, due, blacklist.
local function save_account(account, k)
  drop_spent_bonus(account)
  if account.now_ms then
    expire_buckets(account, account.now_ms)
    queue_bucket_usage_events(account, account.now_ms)
  end
  assert_account_invariants(account)
  append_ledger(account, k.ledger)
  write_account_hash(account, k.account)
  -- Each event carries the balance and available money it left, so that a notice tells what was true
  -- at the event, not what is true when it is delivered (a retry, quiet hours).
  local balance, available = format_integer(account.balance), format_integer(available_money(account))
  for _, event in ipairs(account.pending_events) do
    append_event(k.events, { 'kind', event[2], 'account_id', account.account_id,
      'time_ms', format_integer(event[1]), 'detail', event[3], 'balance', balance, 'available', available })
  end
  notify_gateways(account, k.sessions, k.events, account.notification_ms or account.status_since_ms)
  count_statistics(account, k.stats)
  index_account(account, k.due, k.blacklist)
end

local function bucket_json(bucket)
  return '[' .. json_string(bucket.id) .. ',' .. bucket.unit .. ',' .. format_integer(bucket.remaining) .. ','
    .. format_integer(bucket.reserved) .. ',' .. json_string(bucket.groups_text) .. ','
    .. format_integer(bucket.expires_at_ms) .. ',' .. bucket.priority .. ',' .. bucket.policy .. ','
    .. format_integer(bucket.amount) .. ',' .. json_string(bucket.zones_text) .. ']'
end

-- Bonus instalments to come: [[bonus_id, instalments left, instalment_minor, next due ms], ...].
local function instalments_json(account)
  local entries = {}
  for _, e in ipairs(decode_instalments(account.bonus_instalments)) do
    entries[#entries + 1] = '[' .. json_string(e.bonus_id) .. ',' .. e.left .. ',' .. format_integer(e.instalment_minor)
      .. ',' .. format_integer(e.due_ms) .. ']'
  end
  return '[' .. table.concat(entries, ',') .. ']'
end

-- An account's notification preferences, stored in its 'preferences' field as
-- '<language>|<time_zone>|<channels>|<marketing 0/1>|<quiet start>|<quiet end>' ('' = the plan's
-- default; no field: every one the plan's).
local function encode_preferences(p)
  return table.concat({ p.language, p.time_zone, p.channels, p.marketing_opt_in, p.quiet_hours_start,
    p.quiet_hours_end }, '|')
end

-- The preferences in force, as JSON: the account's own, else its plan's defaults.
local function preferences_json(account, plan)
  local own = {}
  if account.preferences and account.preferences ~= '' then
    own.language, own.time_zone, own.channels, own.marketing_opt_in, own.quiet_hours_start, own.quiet_hours_end =
      string.match(account.preferences, '^([^|]*)|([^|]*)|([^|]*)|([01])|([^|]*)|([^|]*)$')
    assert(own.language, 'corrupt preferences')
  end
  local defaults = plan and plan.preferences or { language = 'en', time_zone = 'UTC', channels = '',
    marketing_opt_in = false, quiet_hours_start = '', quiet_hours_end = '' }
  local function pick(field)
    local value = own[field]
    return (value ~= nil and value ~= '') and value or defaults[field]
  end
  local quiet_start, quiet_end = own.quiet_hours_start, own.quiet_hours_end
  if quiet_start == nil or quiet_start == '' then
    quiet_start, quiet_end = defaults.quiet_hours_start, defaults.quiet_hours_end
  end
  local marketing = own.marketing_opt_in ~= nil and own.marketing_opt_in == '1'
    or own.marketing_opt_in == nil and defaults.marketing_opt_in
  return '{"language":' .. json_string(pick('language')) .. ',"time_zone":' .. json_string(pick('time_zone'))
    .. ',"channels":' .. json_string(pick('channels')) .. ',"marketing_opt_in":' .. (marketing and 'true' or 'false')
    .. ',"quiet_hours_start":' .. json_string(quiet_start) .. ',"quiet_hours_end":' .. json_string(quiet_end) .. '}'
end

-- The subscriber card (creditd/store/replies.py decodes it); now_ms decides which billing cycle the
-- data overage spend is of.
local function account_json(account, open_sessions, now_ms)
  local next_step = in_debt(account) and ladder_due_ms(account) or nil
  local plan = CONFIG.plans[account.plan]
  local buckets = {}
  for _, bucket in ipairs(ordered_buckets(account)) do
    buckets[#buckets + 1] = bucket_json(bucket)
  end
  return '{"account_id":' .. json_string(account.account_id)
    .. ',"plan":' .. json_string(account.plan)
    .. ',"currency":' .. json_string(account.currency)
    .. ',"status":' .. format_integer(account.status)
    .. ',"status_reason":' .. json_string(account.status_reason)
    .. ',"status_since_ms":' .. format_integer(account.status_since_ms)
    .. ',"balance":' .. format_integer(account.balance)
    .. ',"reserved":' .. format_integer(account.reserved)
    .. ',"credit_limit":' .. format_integer(account.credit_limit)
    .. ',"tier":' .. json_string(account.tier)
    .. ',"created_at_ms":' .. format_integer(stored_number(account.created_at_ms))
    .. ',"ledger_seq":' .. format_integer(account.ledger_seq)
    .. ',"contact_name":' .. json_string(account.contact_name)
    .. ',"contact_email":' .. json_string(account.contact_email)
    .. ',"contact_phone":' .. json_string(account.contact_phone)
    .. ',"dealer":' .. json_string(account.dealer or '')
    .. ',"preferences":' .. preferences_json(account, plan)
    .. ',"open_sessions":' .. open_sessions
    .. ',"credit_limit_override":' .. (account.credit_limit_override == '1' and 'true' or 'false')
    .. ',"billing_cycle_day":' .. format_integer(account.billing_cycle_day)
    .. ',"available":' .. format_integer(available_money(account))
    .. ',"data_overage_spent_minor":' .. format_integer(data_overage_spent(account, now_ms))
    .. ',"loan_outstanding":' .. format_integer(account.loan_outstanding)
    .. ',"group_id":' .. json_string(account.group_id or '')
    .. ',"group_holding":' .. format_integer(account.group_holding or 0)
    .. ',"data_overage_cap_minor":' .. format_integer(plan and plan.monthly_data_overage_cap_minor or 0)
    .. ',"reminders_sent":' .. format_integer(account.reminders_sent)
    .. ',"next_status":' .. (next_step and NEXT_LADDER_STATUS[account.status] or 0)
    .. ',"next_status_at_ms":' .. format_integer(next_step or 0)
    .. ',"buckets":[' .. table.concat(buckets, ',') .. ']'
    .. ',"bonus_instalments":' .. instalments_json(account) .. '}'
end

-- The answer of a keyed money call (top_up, borrow): the card, whether it was a replay, the entry's seq.
local function keyed_answer_json(account, keys, now_ms, replayed, seq)
  return '{"account":' .. account_json(account, redis.call('SCARD', keys.sessions), now_ms) .. ',"replayed":'
    .. replayed .. ',"ledger_seq":' .. seq .. '}'
end
