--[=[
purchase_bundle — buys a bundle of the account's plan: debits its price from money and adds its
bucket, at most once per idempotency key; the gateways holding the account's sessions get REAUTH so
the new allowance applies at once. Refused when the account is not ACTIVE or when the purchase would
not leave available money positive (it would exhaust credit and suspend the buyer).

KEYS[1] account    cd:{p:<n>}:acct:<account_id>                          packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>                     set (read: card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>                        list
KEYS[4] events     cd:{p:<n>}:events                                     stream
KEYS[5] record     cd:{p:<n>}:topup:<account_id>/<idempotency_key>     string '<fingerprint>|<ledger_seq>'
KEYS[6] stats      cd:{p:<n>}:stats                                      hash
KEYS[7] due        cd:{p:<n>}:due                                        zset
KEYS[8] blacklist  cd:{p:<n>}:blacklist                                  set
KEYS[+1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<token hash>, only in a SelfService call:
         absent, the call is refused SESSION_ENDED before anything else (lib/keys.lua)
ARGV[1] now_ms           integer, Unix ms
ARGV[2] account_id       [A-Za-z0-9._:-]{1,64}
ARGV[3] bundle_id        a bundle of the account's plan
ARGV[4] idempotency_key  [A-Za-z0-9._:-]{1,64}, unique per account (shared with top-ups)
ARGV[5] actor            the caller's identity
Returns {code, message, account_json}; message 'replayed' for a repeated key.
Codes: SUCCESS; INVALID_REQUEST (bad field, unknown bundle, key reused with another payload, too many
buckets); USER_UNKNOWN; ACCOUNT_TERMINATED; CREDIT_LIMIT_REACHED (not ACTIVE, or not enough money).
]=]

local function check_purchase(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    bundle_id = check_text(args[3], 'bundle_id', ID_PATTERN, 64),
    idempotency_key = check_text(args[4], 'idempotency_key', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  request.fingerprint = redis.sha1hex('bundle\n' .. table.concat(args, '\n', 2, 4))
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  apply_due_changes(account, request.now_ms)
  if applied_seq(keys.record, request.fingerprint) then
    return { account = account, request = request, replayed = true }
  end
  local bundle = CONFIG.plans[account.plan] and CONFIG.plans[account.plan].bundles[request.bundle_id]
  if bundle == nil then
    refuse(CODE.INVALID_REQUEST, 'bundle_id: not offered by plan ' .. account.plan)
  end
  refuse_terminated(account)
  if account.status ~= STATUS.ACTIVE then
    refuse(CODE.CREDIT_LIMIT_REACHED, 'account_id: only an ACTIVE account can buy a bundle')
  end
  if available_money(account) - bundle.price_minor <= 0 then
    refuse(CODE.CREDIT_LIMIT_REACHED, 'bundle_id: costs ' .. format_integer(bundle.price_minor)
      .. ', more than available money can pay while staying positive')
  end
  local count = count_keys(account.buckets)
  if count >= CONFIG.limits.max_buckets_per_account then
    refuse(CODE.INVALID_REQUEST, 'bundle_id: the account already has ' .. count .. ' buckets')
  end
  return { account = account, request = request, bundle = bundle }
end

local function purchase_bundle(raw_keys, args)
  local keys = named_keys('purchase_bundle', raw_keys)
  local checked, outcome = run_checked(check_purchase, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request, bundle = outcome.account, outcome.request, outcome.bundle
  if outcome.replayed then
    return reply(CODE.SUCCESS, 'replayed', account_json(account, redis.call('SCARD', keys.sessions), request.now_ms))
  end
  local reference = 'bundle ' .. request.bundle_id .. ' ' .. request.idempotency_key
  local seq = queue_ledger(account, request.now_ms, 'purchase', -bundle.price_minor, reference)
  local bucket_id = request.bundle_id .. '.' .. format_integer(seq)
  local expires_at_ms = bundle.validity_s > 0 and request.now_ms + bundle.validity_s * 1000 or 0
  account.buckets[bucket_id] = new_bucket(bucket_id, { unit = bundle.unit, amount = bundle.amount,
    expires_at_ms = expires_at_ms, priority = bundle.priority, policy = bundle.policy,
    rating_groups = bundle.rating_groups, zones = bundle.zones })
  account.dirty_buckets[bucket_id] = true
  queue_event(account, request.now_ms, 'bundle_purchased', request.bundle_id .. ' ' .. bucket_id)
  account.notification, account.notification_ms = { 'REAUTH', 'bundle_purchased ' .. request.bundle_id }, request.now_ms
  save_account(account, keys)
  remember_applied(keys.record, request.fingerprint, seq)
  return reply(CODE.SUCCESS, '', account_json(account, redis.call('SCARD', keys.sessions), request.now_ms))
end

redis.register_function('purchase_bundle', purchase_bundle)
