--[=[
charge — one gateway request (INITIAL, UPDATE, TERMINATE or EVENT), applied at most once.

KEYS[1] deadlines   cd:{p:<n>}:deadlines                            zset '<account_id> <gateway_id> <session_id>' by deadline ms
KEYS[2] events      cd:{p:<n>}:events                               stream
KEYS[3] stats       cd:{p:<n>}:stats                                hash (lib/account.lua)
KEYS[4] due         cd:{p:<n>}:due                                  zset of account ids by next due ms (lib/lifecycle.lua)
KEYS[5] blacklist   cd:{p:<n>}:blacklist                            set of terminated account ids
KEYS[6] usage       cd:{p:<n>}:usage                                stream of usage records (lib/usage.lua)
KEYS[7] account     cd:{p:<n>}:acct:<account_id>                    packed account (lib/account.lua)
KEYS[8] sessions    cd:{p:<n>}:sessions:<account_id>               set of '<gateway_id> <session_id>'
KEYS[9] ledger      cd:{p:<n>}:ledger:<account_id>                  list
KEYS[10] session    cd:{p:<n>}:session:<gateway_id>/<session_id>    string: MessagePack (lib/session.lua;
                                                                    an older version's hash is read too)
ARGV[1] now_ms          integer, Unix ms, from the server's clock
ARGV[2] request_values  one MessagePack array, at most 256 + max_session_id_length + 45 x
                        max_units_per_request bytes; its SHA-1 is the request's fingerprint. Packed, a
                        charge is 14 words of FCALL rather than 29: Redis and hiredis work per word.
  [1] request_type      integer 1 INITIAL, 2 UPDATE, 3 TERMINATE, 4 EVENT
  [2] request_number    integer 0..2^32-1, increasing within a session
  [3] account_id        string [A-Za-z0-9._:-]{1,64}
  [4] gateway_id        string [A-Za-z0-9._:-]{1,64}
  [5] session_id        string, printable ASCII without space and braces, 1..max_session_id_length
  [6] called_party      string, digits (E.164, a leading '+' ignored), at most 15; '' for data
  [7] visited_plmn      string, MCC+MNC, 5 or 6 digits; '' for the home network
  [8] units             integer 0..max_units_per_request: how many units follow
  [9 + 5i ..]           per unit, integers: rating_group (0..2^32-1), service_id (0..2^32-1, 0 = none),
                        requested (units, 0 = tariff default), used (units, 0..max_units),
                        used_after_tariff_change (units, <= used: the part of used after the grant's
                        tariff time change)
ARGV[3] answer_format   integer, ANSWER_FORMAT: 0 JSON (the fronts that read the answer's fields),
                        1 PROTOBUF (the gRPC edge, which sends the bytes on); lib/answer.lua
ARGV[4] actor           the caller's identity (lib/checks.lua), recorded in the ledger
Returns {code, message, answer}: code is always SUCCESS (the outcome is the answer's result);
  message is 'replayed' for a retransmission, which gets the stored answer unchanged (in the format
  it was stored in). answer is in answer_format, JSON or a ChargeAnswer's protobuf bytes without
  fields 1 and 2 (lib/answer.lua documents both), and is stored in the session. A refused request's
  answer is in the format ARGV[3] asks for, JSON when it names none; a protobuf answer is not
  replayed to a request that asks for JSON (refused: INVALID_REQUEST).
Result codes: SUCCESS, END_USER_SERVICE_DENIED, CREDIT_LIMIT_REACHED (per grant or whole request),
  RATING_FAILED (no tariff matches a unit: that unit, or the whole request, writing nothing, when no
  unit of an INITIAL or EVENT could be rated; or usage too costly to rate), UNKNOWN_SESSION,
  INVALID_REQUEST, RESOURCES_EXCEEDED (too many open sessions), USER_UNKNOWN. Only business outcomes
  are stored; a refused request writes nothing. charged is the usage's cost; bonus money
  (lib/bonus.lua) pays what it can of it first, and the charge ledger entry debits the rest from main
  money. Every rated unit of a commit or EVENT that charged (or used) something appends its usage
  records in the same call; a replay appends none.
]=]

local UNIT_VALUES, FIRST_UNIT_VALUE = 5, 9
local JSON_FIRST_BYTE = 91 -- '[', which no protobuf answer starts with (lib/answer.lua)
-- What a packed request can take at most: 188 bytes of fields and headers but the session id's own,
-- 45 a unit (five integers of up to 9 bytes each); the rest is slack.
local MAXIMUM_REQUEST_BYTES = 256 + CONFIG.limits.max_session_id_length + 45 * CONFIG.limits.max_units_per_request

-- The field names of units[index] for refusals, built once per index rather than for every request.
local unit_field_names = {}

local function unit_names(index)
  local names = unit_field_names[index]
  if names == nil then
    local field = 'units[' .. format_integer(index) .. ']'
    names = { field = field, rating_group = field .. '.rating_group', service_id = field .. '.service_id',
      requested = field .. '.requested', used = field .. '.used',
      used_after_tariff_change = field .. '.used_after_tariff_change' }
    unit_field_names[index] = names
  end
  return names
end

local function parse_units(values, count, request_type)
  local units, seen = {}, count > 1 and {} or nil -- one unit cannot repeat a rating group
  local max_units = CONFIG.limits.max_units
  for index = 0, count - 1 do
    local base = FIRST_UNIT_VALUE + index * UNIT_VALUES
    local names = unit_names(index)
    local rating_group = check_integer(values[base], names.rating_group, 0, MAX_UINT32)
    local service_id = check_integer(values[base + 1], names.service_id, 0, MAX_UINT32)
    local requested = check_integer(values[base + 2], names.requested, 0, max_units)
    local used = check_integer(values[base + 3], names.used, 0, max_units)
    local unit = {
      field = names.field, names = names, rating_group = rating_group, service_id = service_id,
      requested = requested, used = used,
      used_after_tariff_change = check_integer(values[base + 4], names.used_after_tariff_change, 0, used),
    }
    if seen then
      if seen[rating_group] then
        refuse(CODE.INVALID_REQUEST, names.rating_group .. ': appears twice in one request')
      end
      seen[rating_group] = true
    end
    if unit.used > 0 and (request_type == REQUEST_TYPE.INITIAL or request_type == REQUEST_TYPE.EVENT) then
      refuse(CODE.INVALID_REQUEST, names.used .. ': must be 0 in INITIAL and EVENT requests')
    end
    if unit.requested > 0 and request_type == REQUEST_TYPE.TERMINATE then
      refuse(CODE.INVALID_REQUEST, names.requested .. ': must be 0 in TERMINATE requests')
    end
    units[#units + 1] = unit
  end
  return units
end

-- check_text refuses a value that is no string itself; called_party and visited_plmn may be empty,
-- and string functions would take a number for its digits.
local function string_value(value, field)
  if type(value) ~= 'string' then
    refuse(CODE.INVALID_REQUEST, field .. ': must be a string')
  end
  return value
end

-- The fingerprint the version before stored: the request's values (packed, checked already) as the
-- text words they were then sent as, one a line. A retransmission of a request applied before an
-- upgrade still replays.
local function fingerprint_as_words(packed)
  local _, values = cmsgpack.unpack_one(packed, 0)
  local words = {}
  for index = 1, #values do
    local value = values[index]
    words[index] = type(value) == 'number' and format_integer(value) or value
  end
  return redis.sha1hex(table.concat(words, '\n'))
end

-- The format a refusal of the request is answered in: the one it asks for, JSON when it names none.
local function asked_format(args)
  return number_of_text(args[3] or '') == ANSWER_FORMAT.PROTOBUF and ANSWER_FORMAT.PROTOBUF or ANSWER_FORMAT.JSON
end

local function parse_charge_request(args)
  check_argument_count(args, 4)
  local now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER)
  local values = unpack_array(args[2], 'request_values', MAXIMUM_REQUEST_BYTES)
  local request_type = check_integer(values[1], 'request_type', 1, 4)
  local request_number = check_integer(values[2], 'request_number', 0, MAX_UINT32)
  local account_id = check_text(values[3], 'account_id', ID_PATTERN, 64)
  local gateway_id = check_repeated_text(values[4], 'gateway_id', ID_PATTERN, 64)
  local session_id = check_text(values[5], 'session_id', SESSION_ID_PATTERN, CONFIG.limits.max_session_id_length)
  local called_party = parse_called_party(string_value(values[6], 'called_party'))
  local visited_plmn = parse_visited_plmn(string_value(values[7], 'visited_plmn'))
  local count = check_integer(values[8], 'units', 0, CONFIG.limits.max_units_per_request)
  if #values ~= FIRST_UNIT_VALUE - 1 + UNIT_VALUES * count then
    refuse(CODE.INVALID_REQUEST, 'arguments: expected ' .. (FIRST_UNIT_VALUE - 1 + UNIT_VALUES * count)
      .. ' request_values for ' .. count .. ' units, got ' .. #values)
  end
  local units = parse_units(values, count, request_type)
  local member = gateway_id .. ' ' .. session_id
  -- one constructor with every field: a table grown field by field is rehashed as it grows
  return {
    now_ms = now_ms, request_type = request_type, request_number = request_number, account_id = account_id,
    gateway_id = gateway_id, session_id = session_id, called_party = called_party, visited_plmn = visited_plmn,
    destination = destination_of(called_party), units = units, actor = check_actor(args),
    fingerprint = redis.sha1hex(args[2]), usage = {}, member = member,
    answer_format = parse_integer(args[3], 'answer_format', ANSWER_FORMAT.JSON, ANSWER_FORMAT.PROTOBUF),
    deadline_member = account_id .. ' ' .. member, reference = member .. ' ' .. format_integer(request_number),
  }
end

-- A retransmission's stored answer. The gRPC edge reads JSON too (an answer stored before it asked
-- for protobuf); a front that reads JSON cannot read protobuf, so such a replay is refused.
local function replayed_answer(stored, answer_format)
  if answer_format == ANSWER_FORMAT.JSON and string.byte(stored, 1) ~= JSON_FIRST_BYTE then
    refuse(CODE.INVALID_REQUEST, 'session_id: answered through the gRPC edge; retransmit it there')
  end
  return stored
end

-- Returns the stored answer of a retransmission, nil for a new request; refuses one out of order.
-- args are the call's: a fingerprint of the version before is worked out of them only when needed.
local function check_sequence(session, request, args)
  local kind = request.request_type
  if session == nil then
    if kind == REQUEST_TYPE.UPDATE or kind == REQUEST_TYPE.TERMINATE then
      refuse(CODE.UNKNOWN_SESSION, 'session_id: unknown session')
    end
    return nil
  end
  if session.account_id ~= request.account_id then
    refuse(CODE.INVALID_REQUEST, 'account_id: does not match the account of the session')
  end
  if request.request_number == session.last_number then
    if request.fingerprint == session.last_fingerprint
      or fingerprint_as_words(args[2]) == session.last_fingerprint then
      return replayed_answer(session.last_answer, request.answer_format)
    end
    refuse(CODE.INVALID_REQUEST, 'request_number: already applied with a different payload')
  end
  if request.request_number < session.last_number then
    refuse(CODE.INVALID_REQUEST, 'request_number: must be above the last applied ' .. session.last_number)
  end
  if kind == REQUEST_TYPE.INITIAL or kind == REQUEST_TYPE.EVENT then
    refuse(CODE.INVALID_REQUEST, 'session_id: already in use')
  end
  if session.state ~= 'open' then
    refuse(CODE.UNKNOWN_SESSION, 'session_id: session is closed')
  end
  return nil
end

-- The usage records of one unit's parts (lib/rating.lua usage_parts), written by append_usage.
local function queue_usage(request, unit_request, unit_kind, context, parts)
  for _, part in ipairs(parts) do
    request.usage[#request.usage + 1] = { rating_group = unit_request.rating_group, service_id = unit_request.service_id,
      unit = unit_kind, part = part, zone = context.zone, destination = context.destination }
  end
end

local function new_grant(plan, rating_group)
  local group = plan.rating_groups[rating_group]
  return {
    rating_group = rating_group, result = CODE.SUCCESS, unit = group and group.unit or 0, granted = 0,
    validity_time_s = 0, final = false, throttled = false, charged = 0, tariff = '', tariff_time_change_ms = 0,
    quota_threshold = 0, quota_holding_time_s = 0,
  }
end

-- The tariff of a unit now, for its context; nil (and the grant marked RATING_FAILED, with why) when
-- none matches.
local function unit_tariff(plan, grant, context, unit, now_ms)
  local group = plan.rating_groups[unit.rating_group]
  local tariff = group and tariff_now(plan, group, context, now_ms)
  if tariff == nil then
    grant.result = CODE.RATING_FAILED
    grant.rating_error = unit.field .. ': no tariff of rating group ' .. unit.rating_group .. ' for service_id '
      .. unit.service_id .. ', destination "' .. context.destination .. '" (called_party), zone ' .. context.zone
      .. ' (visited_plmn)'
  end
  return tariff, group
end

-- A unit's report less the units the session already paid for (`covered`, the earliest of them).
local function uncovered(unit, covered)
  if covered == 0 then
    return unit
  end
  local used = unit.used - covered
  return { field = unit.field, names = unit.names, rating_group = unit.rating_group, service_id = unit.service_id,
    requested = unit.requested, used = used, used_after_tariff_change = math.min(unit.used_after_tariff_change, used) }
end

-- Usage of UPDATE and TERMINATE: release each reported group's reservation, rate what was used. Each
-- report first uses what the session's earlier reports of the group paid beyond their use (prepaid),
-- so a session is charged whole blocks of its total use, not of each report.
local function commit_usage(account, plan, request, reservations, prepaid, grants)
  local charged_total = 0
  for _, whole in ipairs(request.units) do
    local grant = new_grant(plan, whole.rating_group)
    local reservation = reservations[whole.rating_group]
    if whole.used_after_tariff_change > 0 and (reservation == nil or reservation.change_ms == 0) then
      refuse(CODE.INVALID_REQUEST, whole.field .. '.used_after_tariff_change: the grant had no tariff time change')
    end
    -- a reservation holds its context (zone, destination); a unit without one takes the request's
    local context, tariff = reservation, nil
    if reservation then
      release_reservation(account, reservation)
      reservations[whole.rating_group] = nil
      grant.tariff = reservation.tariff
    else
      context = unit_context(plan, request, whole)
      tariff = unit_tariff(plan, grant, context, whole, request.now_ms)
      grant.tariff = tariff and tariff.name or ''
    end
    if reservation or tariff then
      -- what earlier reports paid beyond their use covers this one's first units, at the same tariff only
      local paid = prepaid[whole.rating_group]
      local covered = paid and paid.tariff == grant.tariff and math.min(whole.used, paid.units) or 0
      local unit, parts, bonus = uncovered(whole, covered), nil, nil
      grant.charged, parts, bonus = charge_usage(account, tariff, reservation, unit, context, request.now_ms)
      charged_total = charged_total + grant.charged - bonus
      if covered > 0 then -- a record of its own, charging nothing: an earlier report paid for it
        table.insert(parts, 1, { units = covered, from_buckets = 0, charged = 0, tariff = grant.tariff, bonus = 0 })
      end
      queue_usage(request, unit, grant.unit, context, parts)
      local beyond, last = paid_beyond_use(parts), parts[#parts]
      if beyond > 0 then
        prepaid[whole.rating_group] = { units = beyond, tariff = last.tariff }
      elseif paid and whole.used > 0 then
        prepaid[whole.rating_group] = { units = paid.units - covered, tariff = paid.tariff }
      end
    end
    grants[#grants + 1] = grant
  end
  if request.request_type == REQUEST_TYPE.TERMINATE then
    for rating_group, reservation in pairs(reservations) do
      release_reservation(account, reservation)
      reservations[rating_group] = nil
    end
  end
  if charged_total > 0 then
    queue_ledger(account, request.now_ms, 'charge', -charged_total, request.reference)
  end
end

local function fill_grant(grant, tariff, result, granted, final, throttled, reservation)
  grant.result, grant.granted, grant.final, grant.throttled = result, granted, final == true, throttled == true
  grant.tariff = tariff.name
  if reservation then
    grant.validity_time_s = reservation.validity_time_s
    grant.tariff_time_change_ms = reservation.change_ms
    grant.quota_threshold = floor_divide(grant.granted * tariff.quota_threshold_percent, 100)
    grant.quota_holding_time_s = tariff.quota_holding_time_s
  end
end

local function grant_units(account, plan, request, reservations, grants)
  local by_group = nil -- the grants an UPDATE's usage made; an INITIAL has none
  if grants[1] ~= nil then
    by_group = {}
    for _, grant in ipairs(grants) do
      by_group[grant.rating_group] = grant
    end
  end
  for _, unit in ipairs(request.units) do
    local grant = by_group and by_group[unit.rating_group]
    if grant == nil then
      grant = new_grant(plan, unit.rating_group)
      grants[#grants + 1] = grant
    end
    local context = unit_context(plan, request, unit)
    local tariff, group = unit_tariff(plan, grant, context, unit, request.now_ms)
    if tariff == nil then -- unit_tariff marked the grant RATING_FAILED; nothing is granted or debited
    elseif not service_allowed(account, tariff) then
      grant.result = CODE.END_USER_SERVICE_DENIED
    else
      local pricing = price_grant(plan, group, context, request.now_ms, tariff)
      local requested = unit.requested > 0 and unit.requested or tariff.default_grant
      local result, granted, final, throttled, reservation =
        reserve_units(account, plan, pricing, context, unit, group.unit, requested, request.now_ms)
      fill_grant(grant, tariff, result, granted, final, throttled, reservation)
      reservations[unit.rating_group] = reservation
    end
  end
end

-- EVENT: all or nothing. Returns false when any group fails; the caller then discards every change.
local function debit_units(account, plan, request, grants)
  local charged_total, failure = 0, nil
  for _, unit in ipairs(request.units) do
    local grant = new_grant(plan, unit.rating_group)
    local context = unit_context(plan, request, unit)
    local tariff = unit_tariff(plan, grant, context, unit, request.now_ms)
    if tariff == nil then -- unit_tariff marked the grant RATING_FAILED; nothing is granted or debited
    elseif not service_allowed(account, tariff) then
      grant.result = CODE.END_USER_SERVICE_DENIED
    else
      local units = unit.requested > 0 and unit.requested or tariff.default_grant
      local outcome, cost, from_buckets, bonus =
        debit_event(account, tariff, unit, context.zone, units, request.now_ms)
      grant.result, grant.granted, grant.final, grant.charged = outcome.result, outcome.granted, outcome.final == true, cost
      grant.tariff = tariff.name
      queue_usage(request, unit, tariff.unit, context,
        { { units = units, from_buckets = from_buckets, charged = cost, bonus = bonus, tariff = tariff.name } })
      charged_total = charged_total + cost - bonus
      -- the reservation-free debit must still respect what available could pay across groups
      account.reserved = account.reserved + cost - bonus
    end
    failure = failure or (grant.result ~= CODE.SUCCESS and grant.result)
    grants[#grants + 1] = grant
  end
  account.reserved = account.reserved - charged_total
  if failure then
    for _, grant in ipairs(grants) do
      grant.result, grant.granted, grant.charged = failure, 0, 0
    end
    return failure
  end
  if charged_total > 0 then
    queue_ledger(account, request.now_ms, 'charge', -charged_total, request.reference)
  end
  return nil
end

-- An INITIAL or EVENT none of whose units any tariff prices is refused: it writes nothing.
local function refuse_unrated(request, grants)
  if #grants == 0 or (request.request_type ~= REQUEST_TYPE.INITIAL and request.request_type ~= REQUEST_TYPE.EVENT) then
    return
  end
  for _, grant in ipairs(grants) do
    if grant.rating_error == nil then
      return
    end
  end
  refuse(CODE.RATING_FAILED, grants[1].rating_error)
end

local function overall_result(request, grants)
  if request.request_type == REQUEST_TYPE.TERMINATE or #grants == 0 then
    return CODE.SUCCESS
  end
  local first_failure = nil
  for _, grant in ipairs(grants) do
    if grant.result == CODE.SUCCESS then
      return CODE.SUCCESS
    end
    first_failure = first_failure or grant.result
  end
  return first_failure
end

local function rate_request(keys, request, session)
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  apply_due_changes(account, request.now_ms)
  local plan = CONFIG.plans[account.plan]
  if plan == nil then
    refuse(CODE.RATING_FAILED, 'account_id: the account plan ' .. account.plan .. ' is not configured')
  end
  local kind = request.request_type
  if kind == REQUEST_TYPE.INITIAL
      and redis.call('SCARD', keys.sessions) >= CONFIG.limits.max_sessions_per_account then
    refuse(CODE.RESOURCES_EXCEEDED,
      'session_id: the account already has ' .. CONFIG.limits.max_sessions_per_account .. ' open sessions')
  end
  local reservations = session and session.reservations or {}
  local prepaid = session and session.prepaid or {}
  local grants, discard = {}, false
  if kind == REQUEST_TYPE.UPDATE or kind == REQUEST_TYPE.TERMINATE then
    commit_usage(account, plan, request, reservations, prepaid, grants)
  end
  apply_credit_exhaustion(account, request.now_ms, request.reference)
  if kind == REQUEST_TYPE.INITIAL or kind == REQUEST_TYPE.UPDATE then
    grant_units(account, plan, request, reservations, grants)
  elseif kind == REQUEST_TYPE.EVENT then
    discard = debit_units(account, plan, request, grants) ~= nil
    apply_credit_exhaustion(account, request.now_ms, request.reference)
  end
  refuse_unrated(request, grants)
  local result = overall_result(request, grants)
  local closes = kind == REQUEST_TYPE.TERMINATE or kind == REQUEST_TYPE.EVENT
    or (kind == REQUEST_TYPE.INITIAL and result ~= CODE.SUCCESS)
  return {
    account = account, reservations = reservations, prepaid = prepaid, closes = closes, discard = discard,
    answer = encode_answer(request.answer_format, result, account.status, '', plan, grants),
    opened_at_ms = session and session.opened_at_ms or request.now_ms,
  }
end

local function session_deadline_ms(request, reservations)
  local deadline_ms = request.now_ms + CONFIG.limits.idle_session_validity_s * 1000
  local any = false
  for _, reservation in pairs(reservations) do
    deadline_ms = any and math.max(deadline_ms, reservation.deadline_ms) or reservation.deadline_ms
    any = true
  end
  return deadline_ms
end

-- Writes the session whole, packed (lib/session.lua): its answer and sequence, its identity, its
-- reservations and prepaid units; a closing one without them. Only open sessions get here
-- (check_sequence).
local function write_session(keys, request, outcome, session)
  -- an open session's table is written again (its reservations and prepaid units are the outcome's):
  -- only a new one is made
  local stored = session or { account_id = request.account_id, gateway_id = request.gateway_id,
    state = 'open', opened_at_ms = outcome.opened_at_ms, reservations = outcome.reservations,
    prepaid = outcome.prepaid }
  assert(stored.reservations == outcome.reservations and stored.prepaid == outcome.prepaid,
    'the outcome holds another session\'s reservations')
  stored.last_number, stored.last_fingerprint, stored.last_answer =
    request.request_number, request.fingerprint, outcome.answer
  if outcome.closes then
    close_session(keys.session, keys.sessions, keys.deadlines, request, stored, session ~= nil)
    return
  end
  save_open_session(keys.session, stored)
  if session == nil then
    redis.call('SADD', keys.sessions, request.member)
  end
  redis.call('ZADD', keys.deadlines, session_deadline_ms(request, outcome.reservations), request.deadline_member)
end

local function refusal_answer(answer_format, refusal)
  return reply(CODE.SUCCESS, '', encode_answer(answer_format, refusal.code, 0, refusal.message, nil, {}))
end

local function charge(raw_keys, args)
  local keys = named_keys('charge', raw_keys)
  local parsed, request = run_checked(parse_charge_request, args)
  if not parsed then
    return refusal_answer(asked_format(args), request)
  end
  local answer_format = request.answer_format
  local session = load_session(keys.session)
  local in_order, replay = run_checked(check_sequence, session, request, args)
  if not in_order then
    return refusal_answer(answer_format, replay)
  end
  if replay then
    return reply(CODE.SUCCESS, 'replayed', replay)
  end
  local rated, outcome = run_checked(rate_request, keys, request, session)
  if not rated then
    return refusal_answer(answer_format, outcome)
  end
  if not outcome.discard then
    save_account(outcome.account, keys)
    append_usage(keys.usage, outcome.account, request)
  end
  write_session(keys, request, outcome, session)
  return reply(CODE.SUCCESS, '', outcome.answer)
end

redis.register_function('charge', charge)
