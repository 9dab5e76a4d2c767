--[=[
Sessions: one hash per gateway session (cd:{p:<n>}:session:<gateway_id>/<session_id>) with account_id,
gateway_id, state ('open' or 'closed'), opened_at_ms, last_number, last_fingerprint, last_answer,
close_reason (when closed by creditd), and one 'reservation:<rating_group>' field per open grant
(lib/rating.lua), and one 'prepaid:<rating_group>' = '<units>|<tariff>' field per rating group whose last report
paid for more than it used: the units of its last charged block left over, which the next report of
that group at the same tariff uses first (docs/design.md: usage is rounded to whole blocks per session and rating group, not
per report). An open session is a member '<gateway_id> <session_id>' of its account's sessions set
and '<account_id> <gateway_id> <session_id>' of its partition's deadline set. A closed session keeps
its last answer for answer_retention_s, so a retransmission still gets it.
uses: numbers, rating
]=]

-- The fields of a session hash but its reservations.
local SESSION_FIELD_NAMES = { account_id = true, gateway_id = true, state = true, opened_at_ms = true,
  last_number = true, last_fingerprint = true, last_answer = true, close_reason = true }
local PREPAID_PREFIX = 'prepaid:'

local function load_session(key)
  local flat = redis.call('HGETALL', key)
  local count = #flat
  if count == 0 then
    return nil
  end
  -- stored_reservations: what the hash holds, by rating group, so that saving writes only the
  -- reservations that changed (a grant always makes a new table; a loaded one is never changed).
  -- The fields are named in the constructor so that the table is made at its size at once.
  local reservations, stored, prepaid = {}, {}, {}
  local session = { reservations = reservations, stored_reservations = stored, prepaid = prepaid, account_id = nil,
    gateway_id = nil, state = nil, opened_at_ms = nil, last_number = nil, last_fingerprint = nil, last_answer = nil,
    close_reason = nil }
  for index = 1, count, 2 do
    local field = flat[index]
    if SESSION_FIELD_NAMES[field] == nil and string.sub(field, 1, #RESERVATION_PREFIX) == RESERVATION_PREFIX then
      local rating_group = stored_number(string.sub(field, #RESERVATION_PREFIX + 1))
      local reservation = decode_reservation(flat[index + 1])
      reservations[rating_group], stored[rating_group] = reservation, reservation
    elseif SESSION_FIELD_NAMES[field] == nil and string.sub(field, 1, #PREPAID_PREFIX) == PREPAID_PREFIX then
      local units, tariff = string.match(flat[index + 1], '^(%d+)|(.*)$')
      assert(units, 'corrupt prepaid units')
      prepaid[stored_number(string.sub(field, #PREPAID_PREFIX + 1))] = { units = stored_number(units), tariff = tariff }
    else
      session[field] = flat[index + 1]
    end
  end
  session.last_number = stored_number(session.last_number)
  return session
end

-- Closes a session: keeps the identity and last answer (fields) for retransmissions, drops the
-- reservations, and removes it from the open sets. request carries member and deadline_member.
local function close_session(session_key, sessions_key, deadlines_key, request, fields)
  redis.call('HSET', session_key, unpack(fields))
  redis.call('EXPIRE', session_key, CONFIG.limits.answer_retention_s)
  redis.call('SREM', sessions_key, request.member)
  redis.call('ZREM', deadlines_key, request.deadline_member)
end
