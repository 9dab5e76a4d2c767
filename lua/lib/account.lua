--[=[
Account state: load, change in memory, save; ledger and event appends; the subscriber card as JSON.

Account hash (cd:{p:<n>}:acct:<id>): account_id, plan, currency, status, status_reason,
status_since_ms, balance, reserved, credit_limit, tier, created_at_ms, contact_name, contact_email,
contact_phone, ledger_seq, initial_balance, creation_fingerprint, and one field per bucket:
  bucket:<bucket_id> = '<unit>|<remaining>|<reserved>|<expires_at_ms>|<priority>|<policy>|<rg,rg,...>'
Ledger list (cd:{p:<n>}:ledger:<id>): one entry per change, oldest first:
  '<seq>|<time_ms>|<kind>|<amount>|<balance_after>|<actor>|<hash>|<reference>' (reference last: it may
  hold '|'). actor is who caused it; hash = sha1(previous entry's hash .. '\n' .. the entry without its
  hash), the first entry's previous hash being ''. The hash field ledger_hash holds the newest entry's
  hash, so an entry changed, removed or inserted breaks the chain (creditd audit verifies it).
A list, not a stream: Redis preallocates 4 KiB for a stream's first node, too much per account.
It keeps the newest limits.max_ledger_entries entries: older ones are trimmed in the call that
appends, their sum carried in the hash field ledger_carried, the first kept seq in ledger_first_seq
(entry seq then sits at index seq - ledger_first_seq) and the last trimmed entry's hash in
ledger_trimmed_hash (where the kept chain starts). balance always equals
ledger_carried plus the sum of the kept entries' amounts.
]=]
local BUCKET_PREFIX = 'bucket:'
local BUCKET_PATTERN = '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([%d,]*)$'

local function decode_bucket(bucket_id, text)
  local unit, remaining, reserved, expires_at_ms, priority, policy, groups =
    string.match(text, BUCKET_PATTERN)
  assert(unit, 'corrupt bucket ' .. bucket_id)
  local rating_groups = {}
  for group in string.gmatch(groups, '%d+') do
    rating_groups[tonumber(group)] = true
  end
  return {
    id = bucket_id, unit = tonumber(unit), remaining = tonumber(remaining),
    reserved = tonumber(reserved), expires_at_ms = tonumber(expires_at_ms),
    priority = tonumber(priority), policy = tonumber(policy), groups_text = groups,
    rating_groups = rating_groups, has_groups = groups ~= '',
  }
end

local function encode_bucket(bucket)
  assert(bucket.reserved >= 0 and bucket.reserved <= bucket.remaining, 'bucket reserves more than it holds')
  return table.concat({ bucket.unit, format_integer(bucket.remaining), format_integer(bucket.reserved),
    format_integer(bucket.expires_at_ms), bucket.priority, bucket.policy, bucket.groups_text }, '|')
end

local NUMERIC_FIELDS = { 'status', 'status_since_ms', 'balance', 'reserved', 'credit_limit',
  'created_at_ms', 'ledger_seq', 'initial_balance', 'ledger_first_seq', 'ledger_carried' }

local function load_account(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then
    return nil
  end
  local account = { buckets = {}, dirty_buckets = {}, pending_ledger = {}, pending_events = {} }
  for index = 1, #flat, 2 do
    local field, value = flat[index], flat[index + 1]
    if string.sub(field, 1, #BUCKET_PREFIX) == BUCKET_PREFIX then
      local bucket_id = string.sub(field, #BUCKET_PREFIX + 1)
      account.buckets[bucket_id] = decode_bucket(bucket_id, value)
    else
      account[field] = value
    end
  end
  for _, field in ipairs(NUMERIC_FIELDS) do
    account[field] = tonumber(account[field])
  end
  account.ledger_first_seq = account.ledger_first_seq or 1
  account.ledger_carried = account.ledger_carried or 0
  account.ledger_hash = account.ledger_hash or ''
  account.ledger_trimmed_hash = account.ledger_trimmed_hash or ''
  account.loaded_reserved = account.reserved
  account.pending_transitions = {}
  return account
end

local function available_money(account)
  return account.balance + account.credit_limit - account.reserved
end

-- Buckets in consumption order: priority, then earliest expiry (0 = never, last), then id.
local function ordered_buckets(account)
  local list = {}
  for _, bucket in pairs(account.buckets) do
    list[#list + 1] = bucket
  end
  local function expiry_rank(bucket)
    return bucket.expires_at_ms == 0 and MAX_EXACT_INTEGER or bucket.expires_at_ms
  end
  table.sort(list, function(a, b)
    if a.priority ~= b.priority then return a.priority < b.priority end
    if expiry_rank(a) ~= expiry_rank(b) then return expiry_rank(a) < expiry_rank(b) end
    return a.id < b.id
  end)
  return list
end

local function queue_event(account, now_ms, kind, detail)
  table.insert(account.pending_events, { now_ms, kind, detail })
end

-- Low-balance thresholds of the plan crossed downwards by this change (thresholds may be negative).
local function queue_threshold_events(account, now_ms, before, after)
  local plan = CONFIG.plans[account.plan]
  for _, threshold in ipairs(plan and plan.low_balance_thresholds_minor or {}) do
    if before > threshold and after <= threshold then
      queue_event(account, now_ms, 'low_balance', format_integer(threshold))
    end
  end
end

local function queue_ledger(account, now_ms, kind, amount, reference)
  if amount < 0 then
    queue_threshold_events(account, now_ms, account.balance, account.balance + amount)
  end
  account.balance = account.balance + amount
  account.ledger_seq = account.ledger_seq + 1
  table.insert(account.pending_ledger, { account.ledger_seq, now_ms, kind, amount, account.balance, reference })
  return account.ledger_seq
end

local EVENT_OF_STATUS = {
  [1] = 'resumed',
  [2] = 'suspended_one_way',
  [3] = 'suspended_two_way',
  [4] = 'terminated',
}
-- What gateways holding sessions are told when the account enters a status: re-authorise (and get
-- the new verdict) or drop the session at once.
local NOTIFICATION_OF_STATUS = {
  [1] = 'REAUTH',
  [2] = 'REAUTH',
  [3] = 'ABORT_SESSION',
  [4] = 'ABORT_SESSION',
}

local function set_status(account, now_ms, status, reason, reference)
  if account.status == status and account.status_reason == reason then
    return false
  end
  account.status, account.status_reason, account.status_since_ms = status, reason, now_ms
  table.insert(account.pending_transitions, status)
  queue_ledger(account, now_ms, 'status', 0, STATUS_NAME[status] .. ' ' .. reason .. ' ' .. reference)
  queue_event(account, now_ms, EVENT_OF_STATUS[status], reason)
  return true
end

-- The suspension ladder's credit rules. Exhaustion is checked after every balance change, in the same
-- call; recovery only after a top-up, and only for suspensions the credit rule itself caused.
local function apply_credit_exhaustion(account, now_ms, reference)
  if account.status == STATUS.ACTIVE and account.balance + account.credit_limit <= 0 then
    set_status(account, now_ms, STATUS.ONE_WAY_SUSPENDED, 'CREDIT', reference)
  end
end

local function apply_credit_recovery(account, now_ms, reference)
  local suspended = account.status == STATUS.ONE_WAY_SUSPENDED or account.status == STATUS.TWO_WAY_SUSPENDED
  if suspended and account.status_reason == 'CREDIT' and available_money(account) > 0 then
    set_status(account, now_ms, STATUS.ACTIVE, 'TOPUP', reference)
  end
end

local function assert_account_invariants(account)
  assert(account.reserved >= 0, 'reserved is negative')
  assert(account.balance <= MAX_EXACT_INTEGER and account.balance >= -MAX_EXACT_INTEGER, 'balance out of range')
  assert(not (account.status == STATUS.ACTIVE and account.balance + account.credit_limit <= 0),
    'active account with exhausted credit')
end

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

-- When the suspension ladder's next time-driven step is due (nil: none). Only credit-caused
-- suspensions move on by themselves; ADMIN and FRAUD wait for an operator.
local function ladder_due_ms(account)
  local plan = CONFIG.plans[account.plan]
  if plan == nil or account.status_reason ~= 'CREDIT' then
    return nil
  end
  if account.status == STATUS.ONE_WAY_SUSPENDED then
    return account.status_since_ms + plan.one_way_grace_period_s * 1000
  end
  if account.status == STATUS.TWO_WAY_SUSPENDED then
    return account.status_since_ms + plan.two_way_grace_period_s * 1000
  end
  return nil
end

-- The partition's ladder index (zset: account id by due ms, swept for due steps) and blacklist (set
-- of terminated ids, refused by create_account), kept up to date after every status change.
local function index_ladder(account, ladder_key, blacklist_key)
  local due_ms = ladder_due_ms(account)
  if due_ms then
    redis.call('ZADD', ladder_key, due_ms, account.account_id)
  else
    redis.call('ZREM', ladder_key, account.account_id)
  end
  if account.status == STATUS.TERMINATED then
    redis.call('SADD', blacklist_key, account.account_id)
  end
end

-- Applies the steps that are due at now_ms (a long silence may cross both): one-way still in debt
-- becomes two-way, with the plan's late fee; two-way becomes terminated. Each step is dated when it
-- fell due, so the next grace period counts from there.
local function apply_ladder(account, now_ms)
  for _ = 1, 2 do
    local due_ms = ladder_due_ms(account)
    if due_ms == nil or now_ms < due_ms or account.balance + account.credit_limit > 0 then
      return
    end
    if account.status == STATUS.ONE_WAY_SUSPENDED then
      set_status(account, due_ms, STATUS.TWO_WAY_SUSPENDED, 'CREDIT', 'grace period over')
      local fee = CONFIG.plans[account.plan].late_fee_minor
      if fee > 0 then
        queue_ledger(account, due_ms, 'fee', -fee, 'late fee')
      end
    else
      set_status(account, due_ms, STATUS.TERMINATED, 'CREDIT', 'grace period over')
    end
  end
end

-- The named keys of a call on one session (charge, release_orphan).
local function session_call_keys(keys)
  return { account = keys[1], sessions = keys[2], ledger = keys[3], events = keys[6], stats = keys[7],
    ladder = keys[8], blacklist = keys[9] }
end

-- The named keys of a call on one account (create_account, set_status, apply_ladder).
local function account_call_keys(keys)
  return { account = keys[1], sessions = keys[2], ledger = keys[3], events = keys[4], stats = keys[5],
    ladder = keys[6], blacklist = keys[7] }
end

-- The named keys of a call on one account with an idempotency record at KEYS[5] (top_up,
-- purchase_bundle).
local function record_call_keys(keys)
  return { account = keys[1], sessions = keys[2], ledger = keys[3], events = keys[4], stats = keys[6],
    ladder = keys[7], blacklist = keys[8] }
end

local function append_event(events_key, fields)
  redis.call('XADD', events_key, 'MAXLEN', '~', CONFIG.limits.max_events_per_partition, '*', unpack(fields))
end

-- After a status change, one notification per open session of the account, for its gateway.
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

-- Writes everything the call changed: ledger entries first (they carry the sequence numbers), then
-- the account hash, the events, the gateways' notifications and the statistics. Nothing before this
-- point has written.
-- k names the keys: account, sessions, ledger, events, stats, ladder, blacklist.
local function save_account(account, k)
  local account_key, ledger_key, events_key, stats_key, sessions_key = k.account, k.ledger, k.events, k.stats, k.sessions
  assert_account_invariants(account)
  for _, entry in ipairs(account.pending_ledger) do
    assert(account.actor, 'a ledger entry without an actor')
    local head = table.concat({ format_integer(entry[1]), format_integer(entry[2]), entry[3],
      format_integer(entry[4]), format_integer(entry[5]), account.actor }, '|')
    local hash = redis.sha1hex(account.ledger_hash .. '\n' .. head .. '|' .. entry[6])
    redis.call('RPUSH', ledger_key, head .. '|' .. hash .. '|' .. entry[6])
    account.ledger_hash = hash
  end
  trim_ledger(account, ledger_key)
  local fields = { 'balance', format_integer(account.balance), 'reserved', format_integer(account.reserved),
    'status', account.status, 'status_reason', account.status_reason,
    'status_since_ms', format_integer(account.status_since_ms), 'ledger_seq', format_integer(account.ledger_seq),
    'ledger_first_seq', format_integer(account.ledger_first_seq),
    'ledger_carried', format_integer(account.ledger_carried), 'ledger_hash', account.ledger_hash,
    'ledger_trimmed_hash', account.ledger_trimmed_hash }
  for bucket_id in pairs(account.dirty_buckets) do
    fields[#fields + 1] = BUCKET_PREFIX .. bucket_id
    fields[#fields + 1] = encode_bucket(account.buckets[bucket_id])
  end
  redis.call('HSET', account_key, unpack(fields))
  for _, event in ipairs(account.pending_events) do
    append_event(events_key, { 'kind', event[2], 'account_id', account.account_id,
      'time_ms', format_integer(event[1]), 'detail', event[3] })
  end
  notify_gateways(account, sessions_key, events_key, account.notification_ms or account.status_since_ms)
  count_statistics(account, stats_key)
  if #account.pending_transitions > 0 then
    index_ladder(account, k.ladder, k.blacklist)
  end
end

local function bucket_json(bucket)
  return '[' .. json_string(bucket.id) .. ',' .. bucket.unit .. ',' .. format_integer(bucket.remaining) .. ','
    .. format_integer(bucket.reserved) .. ',' .. json_string(bucket.groups_text) .. ','
    .. format_integer(bucket.expires_at_ms) .. ',' .. bucket.priority .. ',' .. bucket.policy .. ']'
end

-- The subscriber card; creditd/records.py decodes it.
local function account_json(account, open_sessions)
  local buckets = {}
  for _, bucket in ipairs(ordered_buckets(account)) do
    buckets[#buckets + 1] = bucket_json(bucket)
  end
  return '{"account_id":' .. json_string(account.account_id)
    .. ',"plan":' .. json_string(account.plan)
    .. ',"currency":' .. json_string(account.currency)
    .. ',"status":' .. account.status
    .. ',"status_reason":' .. json_string(account.status_reason)
    .. ',"status_since_ms":' .. format_integer(account.status_since_ms)
    .. ',"balance":' .. format_integer(account.balance)
    .. ',"reserved":' .. format_integer(account.reserved)
    .. ',"credit_limit":' .. format_integer(account.credit_limit)
    .. ',"tier":' .. json_string(account.tier)
    .. ',"created_at_ms":' .. format_integer(account.created_at_ms)
    .. ',"ledger_seq":' .. format_integer(account.ledger_seq)
    .. ',"contact_name":' .. json_string(account.contact_name)
    .. ',"contact_email":' .. json_string(account.contact_email)
    .. ',"contact_phone":' .. json_string(account.contact_phone)
    .. ',"open_sessions":' .. open_sessions
    .. ',"buckets":[' .. table.concat(buckets, ',') .. ']}'
end

local function load_existing_account(key)
  local account = load_account(key)
  if not account then
    refuse(CODE.USER_UNKNOWN, 'account_id: unknown account')
  end
  return account
end
