--[=[
Sessions: one string per gateway session (cd:{p:<n>}:session:<gateway_id>/<session_id>), a MessagePack
array packed and unpacked by SESSION_CODEC (creditd/store/session_codec.py, StoredSession): account_id,
gateway_id, state ('open' or 'closed'), opened_at_ms, last_number, last_fingerprint, last_answer,
close_reason (when closed by creditd), prepaid (a list of rows {rating_group, units, tariff}, one per
rating group whose last report paid for more than it used: the units of its last charged block left
over, which the next report of that group at the same tariff uses first; docs/design.md: usage is
rounded to whole blocks per session and rating group, not per report), then the 17 values of each
open grant's reservation (lib/rating.lua), flat in the same array; the version before held them as a
list of rows, which is still read. In Lua a session holds its reservations and prepaid units keyed by
rating group. It is read with one GET and written whole with one SET.
A session written by an older version is a hash: a field per name above, one
'reservation:<rating_group>' field per open grant (text, lib/rating.lua decode_reservation) and one
'prepaid:<rating_group>' = '<units>|<tariff>' field per group. GET fails on it (WRONGTYPE); it is then
read with HGETALL, and the session's next write replaces it by the packed string.
An open session is a member '<gateway_id> <session_id>' of its account's sessions set and
'<account_id> <gateway_id> <session_id>' of its partition's deadline set. A closed session keeps its
identity and last answer (no reservations) for answer_retention_s, so a retransmission still gets it.
uses: numbers, keys, rating
]=]

local PREPAID_PREFIX = 'prepaid:'
-- The fields of an older session hash but its reservations and prepaid units.
local SESSION_FIELD_NAMES = { account_id = true, gateway_id = true, state = true, opened_at_ms = true,
  last_number = true, last_fingerprint = true, last_answer = true, close_reason = true }

-- A session hash written by an older version, as load_session returns a packed one.
local function load_session_hash(key)
  local flat = redis.call('HGETALL', key)
  local reservations, prepaid = {}, {}
  local session = { reservations = reservations, prepaid = prepaid, account_id = nil, gateway_id = nil, state = nil,
    opened_at_ms = nil, last_number = nil, last_fingerprint = nil, last_answer = nil, close_reason = nil }
  for index = 1, #flat, 2 do
    local field = flat[index]
    if SESSION_FIELD_NAMES[field] == nil and string.sub(field, 1, #RESERVATION_PREFIX) == RESERVATION_PREFIX then
      reservations[stored_number(string.sub(field, #RESERVATION_PREFIX + 1))] = decode_reservation(flat[index + 1])
    elseif SESSION_FIELD_NAMES[field] == nil and string.sub(field, 1, #PREPAID_PREFIX) == PREPAID_PREFIX then
      local units, tariff = string.match(flat[index + 1], '^(%d+)|(.*)$')
      assert(units, 'corrupt prepaid units')
      prepaid[stored_number(string.sub(field, #PREPAID_PREFIX + 1))] = { units = stored_number(units), tariff = tariff }
    else
      session[field] = flat[index + 1]
    end
  end
  session.last_number = stored_number(session.last_number)
  session.opened_at_ms = stored_number(session.opened_at_ms)
  return session
end

-- The session at key, nil when there is none.
local function load_session(key)
  local packed, older = packed_at(key)
  if older then
    return load_session_hash(key)
  end
  return packed and SESSION_CODEC.unpack(packed) or nil
end

-- Writes an open session whole (it replaces an older version's hash too).
local function save_open_session(key, session)
  redis.call('SET', key, SESSION_CODEC.pack(session))
end

-- Closes a session: keeps its identity and last answer for retransmissions (answer_retention_s),
-- drops its reservations and prepaid units, and removes it from the open sets unless it never was in
-- them (listed false: an EVENT, or an INITIAL that failed). request carries member and deadline_member.
local function close_session(session_key, sessions_key, deadlines_key, request, session, listed)
  session.state, session.reservations, session.prepaid = 'closed', {}, {}
  redis.call('SET', session_key, SESSION_CODEC.pack(session), 'EX', CONFIG.limits.answer_retention_s)
  if listed then
    redis.call('SREM', sessions_key, request.member)
    redis.call('ZREM', deadlines_key, request.deadline_member)
  end
end
