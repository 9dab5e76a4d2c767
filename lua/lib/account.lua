--[=[
Account state: the stored account read into a table and changed in memory (lib/save.lua writes it
back, lib/ledger.lua appends its entries, lib/card.lua shows it as JSON).

Account (cd:{p:<n>}:acct:<id>): one MessagePack string (cmsgpack), an array: first the count of its
buckets (unit MONEY: bonus money, lib/bonus.lua), then the fields in the order of
creditd/store/account_codec.py's ACCOUNT_FIELDS (account_id, currency, ..., balance, reserved,
status, ..., loan_outstanding: loans and their fees not yet recovered; bonus_instalments, lib/bonus.lua;
group_id, group_holding, group_refill_minor, group_refill_tried_ms, lib/group.lua), false for a field
without a value, then each bucket's values:
  bucket_id, unit, remaining, reserved, expires_at_ms, priority, policy, amount, '<rg,rg,...>', '<zone,...>'
  (amount: the size it was granted with, for the usage events; zones: where it serves). Read straight
  from the string (cmsgpack.unpack_limit), with no array made of each. The version before held the
  buckets first, a map of bucket id to the array of the values after the id (unpacking those arrays
  cost a call some 10 000 instructions a bucket), and versions before that wrote a bucket as the text
  of those values joined by '|' ('home' alone before zones existed): both are read, and written the
  new way at the account's next save.
Read with one GET, written whole with one SET. Older versions wrote a map of the same fields (buckets
under 'buckets'), and before that a hash of the fields as text, each bucket a field
'bucket:<bucket_id>' holding its text (GET answers WRONGTYPE): both are read, and written as the
array at the account's next save.
Ledger list (cd:{p:<n>}:ledger:<id>): one entry per change, oldest first:
  '<seq>|<time_ms>|<kind>|<amount>|<balance_after>|<actor>|<hash>|<reference>' (reference last: it may
  hold '|'). actor is who caused it; hash = sha1(previous entry's hash .. '\n' .. the entry without its
  hash), the first entry's previous hash being ''. The hash field ledger_hash holds the newest entry's
  hash, so an entry changed, removed or inserted breaks the chain (creditd audit verifies it).
A list, not a stream: Redis preallocates 4 KiB for a stream's first node, too much per account.
It keeps the newest limits.max_ledger_entries entries, and up to limits.ledger_trim_batch - 1 more:
older ones are trimmed in the call that appends the batch's last, their sum carried in the field
ledger_carried, the first kept seq in ledger_first_seq (entry seq then sits at index seq -
ledger_first_seq) and the last trimmed entry's hash in ledger_trimmed_hash (where the kept chain
starts). balance always equals ledger_carried plus the sum of the kept entries' amounts.
uses: codes, numbers, checks, keys
]=]
local BUCKET_PREFIX = 'bucket:'
local BUCKET_PATTERN = '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([%d,]*)|([%w%._:%-,]+)$'
local OLDER_BUCKET_PATTERN = '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([%d,]*)$'
local HOME_ONLY = 'home'
local BUCKET_FIELDS = 9

-- The sets a bucket's rating-groups and zones texts stand for, built once per text and shared by every
-- bucket with that text (the bundles of one catalogue entry all have the same): building them cost a
-- charge some 10 000 instructions a bucket. Read only (bucket_serves). Begun again once they hold
-- BUCKET_SETS.limit texts, which bounds their memory.
local BUCKET_SETS = { rating_groups = {}, zones = {}, count = 0, limit = 1024 }

local function bucket_set(kind, text)
  local sets = BUCKET_SETS[kind]
  local set = sets[text]
  if set ~= nil then
    return set
  end
  if BUCKET_SETS.count >= BUCKET_SETS.limit then
    BUCKET_SETS.rating_groups, BUCKET_SETS.zones, BUCKET_SETS.count = {}, {}, 0
    sets = BUCKET_SETS[kind]
  end
  set = {}
  if kind == 'rating_groups' then
    for group in string.gmatch(text, '%d+') do
      set[stored_number(group)] = true
    end
  else
    for zone in string.gmatch(text, '[^,]+') do
      set[zone] = true
    end
  end
  sets[text], BUCKET_SETS.count = set, BUCKET_SETS.count + 1
  return set
end

-- A bucket's text, as versions before the packed bucket wrote it, as the array a version after wrote.
local function bucket_of_text(bucket_id, text)
  local unit, remaining, reserved, expires_at_ms, priority, policy, amount, groups, zones =
    string.match(text, BUCKET_PATTERN)
  if unit == nil then
    unit, remaining, reserved, expires_at_ms, priority, policy, amount, groups =
      string.match(text, OLDER_BUCKET_PATTERN)
    zones = HOME_ONLY
  end
  if unit == nil then
    error('corrupt bucket ' .. bucket_id)
  end
  return { stored_number(unit), stored_number(remaining), stored_number(reserved), stored_number(expires_at_ms),
    stored_number(priority), stored_number(policy), stored_number(amount), groups, zones }
end

-- A bucket's values (creditd/store/account_codec.py's BUCKET_VALUES after its id) as the table the
-- functions change.
local function bucket_of(bucket_id, unit, remaining, reserved, expires_at_ms, priority, policy, amount, groups,
                         zones)
  if type(bucket_id) ~= 'string' or type(remaining) ~= 'number' or type(zones) ~= 'string' then
    error('corrupt bucket ' .. tostring(bucket_id))
  end
  return {
    id = bucket_id, unit = unit, remaining = remaining, reserved = reserved, expires_at_ms = expires_at_ms,
    priority = priority, policy = policy, amount = amount, groups_text = groups,
    rating_groups = bucket_set('rating_groups', groups), has_groups = groups ~= '', loaded_remaining = remaining,
    loaded_reserved = reserved, zones_text = zones, zones = bucket_set('zones', zones), stored = nil,
  }
end

-- A bucket an older array held (its own array, or an older version's text) as bucket_of's table.
local function decode_bucket(bucket_id, stored)
  local b = type(stored) == 'table' and stored or bucket_of_text(bucket_id, stored)
  if #b ~= BUCKET_FIELDS or type(b[9]) ~= 'string' then
    error('corrupt bucket ' .. bucket_id)
  end
  return bucket_of(bucket_id, b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9])
end

-- A new, unreserved bucket; b holds unit, amount, expires_at_ms, priority, policy (numbers),
-- rating_groups (text) and zones (text; nil: home only).
local function new_bucket(bucket_id, b)
  return bucket_of(bucket_id, b.unit, b.amount, 0, b.expires_at_ms, b.priority, b.policy, b.amount,
    b.rating_groups, b.zones or HOME_ONLY)
end

-- A bucket's values as the account's array holds them (lib/save.lua writes them after its fields).
-- remaining and reserved are the only values a function changes on a loaded bucket: one with both as
-- loaded is written back as the bytes it was read from (a call on an account with three bundles
-- changes one bucket at most; the pack costs more than the bytes' copy made at load).
local function pack_bucket(bucket)
  assert(bucket.reserved >= 0 and bucket.reserved <= bucket.remaining, 'bucket reserves more than it holds')
  if bucket.stored ~= nil and bucket.remaining == bucket.loaded_remaining and bucket.reserved == bucket.loaded_reserved
  then
    return bucket.stored
  end
  return cmsgpack.pack(bucket.id, bucket.unit, bucket.remaining, bucket.reserved, bucket.expires_at_ms,
    bucket.priority, bucket.policy, bucket.amount, bucket.groups_text, bucket.zones_text)
end

-- The fields of an account hash written by an older version, as text (ACCOUNT_CODEC.finish_hash
-- turns them into what a packed account holds); its buckets decoded into buckets.
local function read_account_hash(key, buckets)
  local flat = redis.call('HGETALL', key)
  local names, sub, account = ACCOUNT_CODEC.names, string.sub, {}
  for index = 1, #flat, 2 do
    local field = flat[index]
    -- a look-up first: most fields are not buckets, and a substring costs a string
    if names[field] == nil and sub(field, 1, 7) == BUCKET_PREFIX then
      local bucket_id = sub(field, 8)
      buckets[bucket_id] = decode_bucket(bucket_id, flat[index + 1])
    else
      account[field] = flat[index + 1]
    end
  end
  ACCOUNT_CODEC.finish_hash(account)
  return account
end

-- The account stored under key, nil when there is none. What the call changes in memory (the
-- pending_ and dirty_ tables) is written by lib/save.lua in one step after every check.
local function load_account(key)
  local packed, older = packed_at(key)
  if not packed and not older then
    return nil
  end
  local account, buckets = nil, {}
  if older then
    account = read_account_hash(key, buckets)
  else
    local texts, count, offset
    account, texts, count, offset = ACCOUNT_CODEC.read(packed)
    if texts ~= nil then
      for bucket_id, text in pairs(texts) do
        buckets[bucket_id] = decode_bucket(bucket_id, text)
      end
    end
    -- each bucket's values straight from the string, with no array made of them; cmsgpack answers
    -- the offset -1 once the string is read to its end, which must come with the last bucket
    for _ = 1, count or 0 do
      if offset == -1 then
        error('corrupt account: its array holds fewer buckets than it counts')
      end
      local bucket_id, unit, remaining, reserved, expires_at_ms, priority, policy, amount, groups, zones
      local start = offset
      offset, bucket_id, unit, remaining, reserved, expires_at_ms, priority, policy, amount, groups, zones =
        cmsgpack.unpack_limit(packed, BUCKET_FIELDS + 1, offset)
      local bucket = bucket_of(bucket_id, unit, remaining, reserved, expires_at_ms, priority, policy, amount,
        groups, zones)
      -- its bytes (offsets count from 0; -1: to the end), for pack_bucket to write back unchanged
      bucket.stored = string.sub(packed, start + 1, offset == -1 and #packed or offset)
      buckets[bucket_id] = bucket
    end
    if count and offset ~= -1 then
      error('corrupt account: its array holds more than its fields and the buckets it counts')
    end
  end
  local has_money_buckets = false
  for _, bucket in pairs(buckets) do
    has_money_buckets = has_money_buckets or bucket.unit == UNIT.MONEY
  end
  account.buckets, account.has_money_buckets = buckets, has_money_buckets
  account.dirty_buckets, account.pending_ledger, account.pending_events = {}, {}, {}
  account.removed_buckets, account.pending_transitions = {}, {}
  account.loaded_reserved = account.reserved
  account.loaded_reminders_sent = account.reminders_sent
  return account
end

local function available_money(account)
  return account.balance + account.credit_limit - account.reserved
end

-- Whether a bucket serves a unit of a rating group in a zone now (units buckets in lib/rating.lua,
-- bonus money in lib/bonus.lua).
local function bucket_serves(bucket, unit, rating_group, zone, now_ms)
  return bucket.unit == unit
    and (not bucket.has_groups or bucket.rating_groups[rating_group] == true)
    and bucket.zones[zone] == true
    and (bucket.expires_at_ms == 0 or bucket.expires_at_ms > now_ms)
end

-- Buckets in consumption order: priority, then earliest expiry (0 = never, last), then id. The
-- comparison is made once, not as two closures at every call (a call orders its buckets up to three
-- times).
local function consumed_before(a, b)
  if a.priority ~= b.priority then
    return a.priority < b.priority
  end
  local a_expiry = a.expires_at_ms == 0 and MAX_EXACT_INTEGER or a.expires_at_ms
  local b_expiry = b.expires_at_ms == 0 and MAX_EXACT_INTEGER or b.expires_at_ms
  if a_expiry ~= b_expiry then
    return a_expiry < b_expiry
  end
  return a.id < b.id
end

local function ordered_buckets(account)
  local list = {}
  for _, bucket in pairs(account.buckets) do
    list[#list + 1] = bucket
  end
  table.sort(list, consumed_before)
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

-- A group member's debit (lib/group.lua): own money is spent first and the group's last, unless its
-- plan says group_money_first, when usage charges take the group's first (fees, loans and bundles
-- never do); either way what the group handed over is at most what is left of the balance.
local function spend_group_holding(account, kind, amount)
  local plan = CONFIG.plans[account.plan]
  if kind == 'charge' and plan and plan.group_money_first then
    account.group_holding = math.max(0, account.group_holding + amount)
  end
  account.group_holding = math.min(account.group_holding, math.max(account.balance, 0))
end

-- A debit that crosses a low-balance threshold queues its event, unless without_threshold_events: a
-- loan recovered from the top-up of the same call leaves the balance no lower than it started.
local function queue_ledger(account, now_ms, kind, amount, reference, without_threshold_events)
  if amount < 0 and not without_threshold_events then
    queue_threshold_events(account, now_ms, account.balance, account.balance + amount)
  end
  account.balance = account.balance + amount
  if amount < 0 and account.group_holding > 0 then
    spend_group_holding(account, kind, amount)
  end
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
  account.reminders_sent = 0
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

-- reason: what resumed it (TOPUP, CREDIT_LIMIT, ADJUSTMENT, LOAN, GROUP: a shared wallet's refill).
local function apply_credit_recovery(account, now_ms, reference, reason)
  local suspended = account.status == STATUS.ONE_WAY_SUSPENDED or account.status == STATUS.TWO_WAY_SUSPENDED
  if suspended and account.status_reason == 'CREDIT' and available_money(account) > 0 then
    set_status(account, now_ms, STATUS.ACTIVE, reason, reference)
  end
end

local function assert_account_invariants(account)
  assert(account.reserved >= 0, 'reserved is negative')
  assert(account.loan_outstanding >= 0, 'loan outstanding is negative')
  assert(account.balance <= MAX_EXACT_INTEGER and account.balance >= -MAX_EXACT_INTEGER, 'balance out of range')
  assert(not (account.status == STATUS.ACTIVE and account.balance + account.credit_limit <= 0),
    'active account with exhausted credit')
end

-- An idempotency record (cd:{p:<n>}:topup:<account_id>/<key>, '<fingerprint>|<ledger_seq>', shared by
-- top-ups, purchases and adjustments): the ledger seq the key applied as, for a retransmission; nil
-- for a new key; refuses a key already used with another payload.
local function applied_seq(record_key, fingerprint)
  local record = redis.call('GET', record_key)
  if not record then
    return nil
  end
  local stored, seq = string.match(record, '^(%x+)|(%d+)$')
  assert(stored, 'corrupt idempotency record')
  if stored ~= fingerprint then
    refuse(CODE.INVALID_REQUEST, 'idempotency_key: already used with a different payload')
  end
  return seq
end

local function remember_applied(record_key, fingerprint, seq)
  redis.call('SET', record_key, fingerprint .. '|' .. format_integer(seq), 'EX', CONFIG.limits.topup_key_retention_s)
end

-- Calls that change a terminated account are refused (a terminated number only keeps its history).
local function refuse_terminated(account)
  if account.status == STATUS.TERMINATED then
    refuse(CODE.ACCOUNT_TERMINATED, 'account_id: the account is terminated')
  end
end

local function load_existing_account(key)
  local account = load_account(key)
  if not account then
    refuse(CODE.USER_UNKNOWN, 'account_id: unknown account')
  end
  return account
end

-- The checks of a call whose arguments are just (now_ms, account_id, actor) (advance_account,
-- recompute_tier): the request and the loaded account, or a refusal.
local function check_account_call(keys, args)
  check_argument_count(args, 3)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  return { account = account, request = request }
end
