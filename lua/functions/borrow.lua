--[=[
borrow — emergency credit: lends an account one of its plan's loan offers, once per idempotency key.
The amount is credited at once (a 'loan' ledger entry, which may resume a line barred for lack of
credit); the amount and the offer's fee are owed (the account's loan_outstanding) and top_up
recovers them from the next top-ups. Refused to an account suspended both ways or closed, to a tier
the offer does not name, and when the account would owe more than the offer's max_outstanding.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>                          packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>                     set (read: the card, notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>                        list
KEYS[4] events     cd:{p:<n>}:events                                     stream
KEYS[5] record     cd:{p:<n>}:topup:<account_id>/<idempotency_key>  string '<fingerprint>|<ledger_seq>'
KEYS[6] stats      cd:{p:<n>}:stats                                      hash
KEYS[7] due        cd:{p:<n>}:due                                        zset (lib/lifecycle.lua)
KEYS[8] blacklist  cd:{p:<n>}:blacklist                                  set
KEYS[+1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<token hash>, only in a SelfService call:
         absent, the call is refused SESSION_ENDED before anything else (lib/keys.lua)
ARGV[1] now_ms           integer, Unix ms
ARGV[2] account_id       [A-Za-z0-9._:-]{1,64}
ARGV[3] offer_id         a loan offer of the account's plan ([A-Za-z0-9._:-]{1,64})
ARGV[4] idempotency_key  [A-Za-z0-9._:-]{1,64}, unique per account (the key space of top-ups)
ARGV[5] actor            the caller's identity, recorded in the ledger
Returns {code, message, '{"account":<account_json>,"replayed":0|1,"ledger_seq":<n>}'}.
Codes: SUCCESS; INVALID_REQUEST (bad field, unknown offer, key reused for another request);
USER_UNKNOWN; ACCOUNT_TERMINATED; REFUSED (suspended both ways, tier not offered, would owe too much).
]=]

local function check_borrow(keys, args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    offer_id = check_text(args[3], 'offer_id', ID_PATTERN, 64),
    idempotency_key = check_text(args[4], 'idempotency_key', ID_PATTERN, 64),
    actor = check_actor(args),
  }
  request.fingerprint = redis.sha1hex('borrow\n' .. table.concat(args, '\n', 2, 4))
  local account, seq = load_for_keyed_call(keys, request)
  if seq then
    return { account = account, request = request, replayed_seq = seq }
  end
  local offer = CONFIG.plans[account.plan] and CONFIG.plans[account.plan].loan_offers[request.offer_id]
  if not offer then
    refuse(CODE.INVALID_REQUEST, 'offer_id: the plan ' .. account.plan .. ' has no loan offer ' .. request.offer_id)
  end
  if account.status == STATUS.TWO_WAY_SUSPENDED then
    refuse(CODE.REFUSED, 'account_id: an account suspended both ways cannot borrow')
  end
  if not offer.any_tier and not offer.tiers[account.tier] then
    refuse(CODE.REFUSED, 'offer_id: not offered to tier ' .. account.tier)
  end
  local owed = account.loan_outstanding + offer.amount_minor + offer.fee_minor
  if owed > offer.max_outstanding_minor then
    refuse(CODE.REFUSED, 'offer_id: would owe ' .. format_integer(owed) .. ', above the offer\'s '
      .. format_integer(offer.max_outstanding_minor))
  end
  if account.balance + offer.amount_minor > CONFIG.limits.max_balance_minor then
    refuse(CODE.INVALID_REQUEST, 'offer_id: would take the balance above '
      .. format_integer(CONFIG.limits.max_balance_minor))
  end
  return { account = account, request = request, offer = offer }
end

local function borrow(raw_keys, args)
  local keys = named_keys('borrow', raw_keys)
  local checked, outcome = run_checked(check_borrow, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request, offer = outcome.account, outcome.request, outcome.offer
  if outcome.replayed_seq then
    return reply(CODE.SUCCESS, 'replayed', keyed_answer_json(account, keys, request.now_ms, 1, outcome.replayed_seq))
  end
  local reference = request.offer_id .. ' ' .. request.idempotency_key
  local seq = queue_ledger(account, request.now_ms, 'loan', offer.amount_minor, reference)
  account.loan_outstanding = account.loan_outstanding + offer.amount_minor + offer.fee_minor
  queue_event(account, request.now_ms, 'loan_granted', format_integer(offer.amount_minor) .. ' '
    .. format_integer(offer.fee_minor) .. ' ' .. format_integer(account.loan_outstanding))
  apply_credit_recovery(account, request.now_ms, reference, 'LOAN')
  save_account(account, keys)
  remember_applied(keys.record, request.fingerprint, seq)
  return reply(CODE.SUCCESS, '', keyed_answer_json(account, keys, request.now_ms, 0, format_integer(seq)))
end

redis.register_function('borrow', borrow)
