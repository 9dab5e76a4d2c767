--[=[
create_account — opens an account with its opening ledger entry and optional buckets. Idempotent: the
same arguments again return the existing account (a client retry after a time-out).

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: the card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
ARGV[1] now_ms            integer, Unix ms
ARGV[2] account_id        [A-Za-z0-9._:-]{1,64}
ARGV[3] plan              name of a configured plan
ARGV[4] initial_balance   integer minor units, 0..max_amount_minor
ARGV[5] credit_limit      integer minor units 0..max_amount_minor: a manual override that tier
                          recomputes leave alone; '' for the plan's lowest credit tier (or its default)
ARGV[6..8] contact_name, contact_email, contact_phone   text, no control characters, bounded
ARGV[9] billing_cycle_day integer 1..28, or '' for the day of creation (28 from the 29th on)
ARGV[10] bucket_count     integer 0..max_buckets_per_account
ARGV[11 + 7i ..]          per bucket: bucket_id ([A-Za-z0-9._:-]{1,64}), unit (1..3), amount (units,
                          1..max_units), rating_groups ('' or comma-separated integers), expires_at_ms
                          (0 = never), priority (0..2^32-1), exhaustion_policy (1..3, required for BYTES)
ARGV[last - 1]            dealer: who signed the customer, [A-Za-z0-9._:-]{0,64} ('' for none)
ARGV[last]                actor: the caller's identity, recorded in the ledger
Returns {code, message, account_json}.
Codes: SUCCESS; INVALID_REQUEST (field named in message); ACCOUNT_EXISTS (different arguments);
ACCOUNT_TERMINATED (the id is on the blacklist of terminated subscribers).
]=]

local function parse_rating_groups(text, field)
  if text == '' then
    return text
  end
  if #text > 200 or not string.find(text, '^%d+[%d,]*$') or string.find(text, ',,') or string.find(text, ',$') then
    refuse(CODE.INVALID_REQUEST, field .. ': must be comma-separated integers')
  end
  local count = 0
  for group in string.gmatch(text, '%d+') do
    parse_integer(group, field, 0, MAX_UINT32)
    count = count + 1
  end
  if count > CONFIG.limits.max_rating_groups_per_bucket then
    refuse(CODE.INVALID_REQUEST, field .. ': more than ' .. CONFIG.limits.max_rating_groups_per_bucket .. ' rating groups')
  end
  return text
end

local function parse_bucket(args, base, field)
  local bucket_id = check_text(args[base], field .. '.bucket_id', ID_PATTERN, 64)
  local unit = parse_integer(args[base + 1], field .. '.unit', 1, 3)
  local amount = parse_integer(args[base + 2], field .. '.remaining', 1, CONFIG.limits.max_units)
  local groups = parse_rating_groups(args[base + 3], field .. '.rating_groups')
  local expires_at_ms = parse_integer(args[base + 4], field .. '.expires_at_ms', 0, MAX_EXACT_INTEGER)
  local priority = parse_integer(args[base + 5], field .. '.priority', 0, MAX_UINT32)
  local minimum_policy = unit == UNIT.BYTES and 1 or 0
  local policy = parse_integer(args[base + 6], field .. '.exhaustion_policy', minimum_policy, 3)
  return new_bucket(bucket_id, { unit = unit, amount = amount, expires_at_ms = expires_at_ms,
    priority = priority, policy = policy, rating_groups = groups })
end

local function parse_create_request(args)
  if #args < 12 then
    refuse(CODE.INVALID_REQUEST, 'arguments: expected at least 12, got ' .. #args)
  end
  local limits = CONFIG.limits
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    plan = check_text(args[3], 'plan', ID_PATTERN, 64),
    initial_balance = parse_integer(args[4], 'initial_balance', 0, limits.max_amount_minor),
    contact_name = check_free_text(args[6], 'contact.name', limits.max_contact_field_length),
    contact_email = check_free_text(args[7], 'contact.email', limits.max_contact_field_length),
    contact_phone = check_free_text(args[8], 'contact.phone', limits.max_contact_field_length),
    buckets = {},
  }
  local plan = CONFIG.plans[request.plan]
  if plan == nil then
    refuse(CODE.INVALID_REQUEST, 'plan: unknown plan ' .. request.plan)
  end
  local lowest_tier = plan.credit_tiers[1]
  request.tier = lowest_tier and lowest_tier.name or ''
  request.credit_limit = lowest_tier and lowest_tier.credit_limit_minor or plan.credit_limit_minor
  request.credit_limit_override = '0'
  if args[5] ~= '' then
    request.credit_limit = parse_integer(args[5], 'credit_limit', 0, limits.max_amount_minor)
    request.credit_limit_override = '1'
  end
  request.billing_cycle_day = cycle_day_of(request.now_ms)
  if args[9] ~= '' then
    request.billing_cycle_day = parse_integer(args[9], 'billing_cycle_day', 1, 28)
  end
  local count = parse_integer(args[10], 'buckets', 0, limits.max_buckets_per_account)
  check_argument_count(args, 12 + 7 * count)
  for index = 0, count - 1 do
    local bucket = parse_bucket(args, 11 + index * 7, 'buckets[' .. index .. ']')
    if request.buckets[bucket.id] then
      refuse(CODE.INVALID_REQUEST, 'buckets[' .. index .. '].bucket_id: appears twice')
    end
    request.buckets[bucket.id] = bucket
  end
  request.currency = plan.currency
  request.dealer = args[#args - 1]
  if request.dealer ~= '' then
    check_text(request.dealer, 'dealer', ID_PATTERN, 64)
  end
  request.actor = check_actor(args)
  request.fingerprint = redis.sha1hex(table.concat(args, '\n', 2, #args - 1))
  return request
end

local function new_account(request)
  local account = {
    account_id = request.account_id, plan = request.plan, currency = request.currency,
    status = STATUS.ACTIVE, status_reason = 'CREATED', status_since_ms = request.now_ms,
    balance = 0, reserved = 0, credit_limit = request.credit_limit, tier = request.tier,
    credit_limit_override = request.credit_limit_override, billing_cycle_day = request.billing_cycle_day,
    reminders_sent = 0, loaded_reminders_sent = 0, overage_cycle = 0, overage_spent_minor = 0, loan_outstanding = 0,
    plan_changes_applied = '', removed_buckets = {},
    created_at_ms = request.now_ms, ledger_seq = 0, initial_balance = request.initial_balance,
    ledger_first_seq = 1, ledger_carried = 0, ledger_hash = '', ledger_trimmed_hash = '', actor = request.actor,
    contact_name = request.contact_name, contact_email = request.contact_email,
    contact_phone = request.contact_phone, dealer = request.dealer, buckets = request.buckets, dirty_buckets = {},
    pending_ledger = {}, pending_events = {}, pending_transitions = {}, loaded_reserved = 0,
  }
  for bucket_id in pairs(request.buckets) do
    account.dirty_buckets[bucket_id] = true
  end
  queue_ledger(account, request.now_ms, 'opening', request.initial_balance, 'created')
  queue_event(account, request.now_ms, 'account_created', request.plan)
  apply_credit_exhaustion(account, request.now_ms, 'created')
  return account
end

local function create_account(raw_keys, args)
  local keys = named_keys('create_account', raw_keys)
  local parsed, request = run_checked(parse_create_request, args)
  if not parsed then
    return reply(request.code, request.message)
  end
  if redis.call('SISMEMBER', keys.blacklist, request.account_id) == 1 then
    return reply(CODE.ACCOUNT_TERMINATED, 'account_id: blacklisted: this subscriber id was terminated')
  end
  local existing = load_account(keys.account)
  if existing then
    if existing.creation_fingerprint == request.fingerprint then
      return reply(CODE.SUCCESS, 'replayed', account_json(existing, redis.call('SCARD', keys.sessions), request.now_ms))
    end
    return reply(CODE.ACCOUNT_EXISTS, 'account_id: an account with this id already exists')
  end
  local account = new_account(request)
  account.creation_fingerprint = request.fingerprint
  save_account(account, keys)
  redis.call('HINCRBY', keys.stats, 'accounts_created', 1)
  return reply(CODE.SUCCESS, '', account_json(account, 0, request.now_ms))
end

redis.register_function('create_account', create_account)
