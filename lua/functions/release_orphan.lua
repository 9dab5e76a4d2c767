--[=[
release_orphan — gives back what a session holds when its gateway stopped reporting: the session's
deadline plus the sweeper's grace period has passed. Policy 'release' returns the reservations;
'charge' debits what was reserved, as if it had been used. Either way the session is closed with
close_reason 'orphan', an orphan_released event is written, and a later request for the session
gets UNKNOWN_SESSION (a retransmission of its last request still gets its stored answer).
The deadline is checked here again: the gateway may have reported since the sweeper looked.

KEYS[1] deadlines   cd:{p:<n>}:deadlines                            zset
KEYS[2] events      cd:{p:<n>}:events                               stream
KEYS[3] stats       cd:{p:<n>}:stats                                hash
KEYS[4] due         cd:{p:<n>}:due                                  zset of account ids by next due ms (lib/lifecycle.lua)
KEYS[5] blacklist   cd:{p:<n>}:blacklist                            set of terminated account ids
KEYS[6] usage       cd:{p:<n>}:usage                                stream of usage records (lib/usage.lua)
KEYS[7] account     cd:{p:<n>}:acct:<account_id>                    packed account (lib/account.lua)
KEYS[8] sessions    cd:{p:<n>}:sessions:<account_id>               set
KEYS[9] ledger      cd:{p:<n>}:ledger:<account_id>                  list
KEYS[10] session    cd:{p:<n>}:session:<gateway_id>/<session_id>    string: MessagePack (lib/session.lua;
                                                                    an older version's hash is read too)
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] gateway_id  [A-Za-z0-9._:-]{1,64}
ARGV[4] session_id  as in charge
ARGV[5] actor       the sweeper's identity ('sweeper:<owner>'), recorded in the ledger
Returns {code, message, '{"released":0|1,"charged":<minor units>}'}; message 'not due' or 'stale'
  (an index entry without an open session, removed) when nothing was released.
Codes: SUCCESS, INVALID_REQUEST.
]=]

local function check_release(args)
  check_argument_count(args, 5)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    gateway_id = check_text(args[3], 'gateway_id', ID_PATTERN, 64),
    session_id = check_text(args[4], 'session_id', SESSION_ID_PATTERN, CONFIG.limits.max_session_id_length),
    actor = check_actor(args),
  }
  request.member = request.gateway_id .. ' ' .. request.session_id
  request.deadline_member = request.account_id .. ' ' .. request.member
  return request
end

-- The usage record of a reservation charged as used: its units bucket's units and the units its
-- money (main and bonus) bought at the grant's first price.
local function queue_orphan_usage(request, rating_group, reservation, cost, bonus)
  local charged = cost + bonus
  local money_units = reservation.price_minor > 0
    and floor_divide(charged, reservation.price_minor) * reservation.block_size or 0
  local bucket_units = bonus > 0 and 0 or reservation.bucket_units
  local units = bucket_units + money_units
  if units == 0 and charged == 0 then
    return
  end
  request.usage[#request.usage + 1] = { rating_group = rating_group, service_id = 0, unit = reservation.unit,
    zone = reservation.zone, destination = reservation.destination,
    part = { units = units, from_buckets = bucket_units, charged = charged, bonus = bonus, tariff = reservation.tariff } }
end

local NOTHING_RELEASED = '{"released":0,"charged":0}'

-- Debits a reservation as used: its units from its units bucket, or its bonus money from its bonus
-- bucket. Returns the main money to debit and the bonus money taken.
local function charge_reservation(account, reservation)
  local bucket, bonus = account.buckets[reservation.bucket_id], 0
  if bucket and reservation.bucket_units > 0 then
    local taken = math.min(reservation.bucket_units, bucket.remaining)
    bucket.remaining = bucket.remaining - taken
    account.dirty_buckets[bucket.id] = true
    bonus = bucket.unit == UNIT.MONEY and taken or 0
  end
  return reservation.money, bonus
end

local function release_orphan(raw_keys, args)
  local keys = named_keys('release_orphan', raw_keys)
  local checked, request = run_checked(check_release, args)
  if not checked then
    return reply(request.code, request.message)
  end
  local deadline_ms = redis.call('ZSCORE', keys.deadlines, request.deadline_member)
  if not deadline_ms or tonumber(deadline_ms) + CONFIG.sweeper.grace_period_s * 1000 > request.now_ms then
    return reply(CODE.SUCCESS, 'not due', NOTHING_RELEASED)
  end
  local session, account = load_session(keys.session), load_account(keys.account)
  if session == nil or session.state ~= 'open' or account == nil then
    redis.call('ZREM', keys.deadlines, request.deadline_member)
    redis.call('SREM', keys.sessions, request.member)
    return reply(CODE.SUCCESS, 'stale', NOTHING_RELEASED)
  end
  account.actor = request.actor
  apply_due_changes(account, request.now_ms)
  local policy, charged = CONFIG.sweeper.orphan_policy, 0
  request.request_number, request.usage = session.last_number, {}
  for rating_group, reservation in pairs(session.reservations) do
    release_reservation(account, reservation)
    if policy == 'charge' then
      local cost, bonus = charge_reservation(account, reservation)
      charged = charged + cost
      queue_orphan_usage(request, rating_group, reservation, cost, bonus)
    end
  end
  local reference = 'orphan ' .. request.member
  request.reference = reference
  if charged > 0 then
    queue_ledger(account, request.now_ms, 'charge', -charged, reference)
  end
  apply_credit_exhaustion(account, request.now_ms, reference)
  queue_event(account, request.now_ms, 'orphan_released', request.member .. ' ' .. policy .. ' ' .. format_integer(charged))
  save_account(account, keys)
  append_usage(keys.usage, account, request)
  session.close_reason = 'orphan'
  close_session(keys.session, keys.sessions, keys.deadlines, request, session, true)
  return reply(CODE.SUCCESS, '', '{"released":1,"charged":' .. format_integer(charged) .. '}')
end

redis.register_function('release_orphan', release_orphan)
