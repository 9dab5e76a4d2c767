--[=[
Checks and replies: a refusal is raised with refuse(code, message) during the checking phase of a
function, which runs under run_checked; the message always starts with the name of the offending
field. Arguments are parsed here (parse_integer, check_text and the rest: creditd/contract.py's rules,
rendered as CONTRACT), and every function answers through reply.
uses: codes, numbers
]=]
local Refusal = {}

local function refuse(code, message)
  error(setmetatable({ code = code, message = message }, Refusal), 0)
end

-- Runs check(...) and returns true, its result; or false, the refusal it raised. Any other error
-- (a bug, a failed redis.call) is raised again unchanged.
local function run_checked(check, ...)
  local keys = ...
  -- A SelfService call (named_keys: portal_session) is refused, before any check, once its session
  -- is gone (signed out, expired): the session check and the call are one step.
  if type(keys) == 'table' and keys.portal_session ~= nil and redis.call('EXISTS', keys.portal_session) == 0 then
    return false, { code = CODE.SESSION_ENDED, message = 'session_token: signed out or expired; sign in again' }
  end
  local ok, result = pcall(check, ...)
  if ok then
    return true, result
  end
  if getmetatable(result) == Refusal then
    return false, result
  end
  error(result, 0)
end

local function refuse_out_of_range(field, minimum, maximum)
  refuse(CODE.INVALID_REQUEST,
    field .. ': must be between ' .. format_integer(minimum) .. ' and ' .. format_integer(maximum))
end

local function parse_integer(text, field, minimum, maximum)
  local value = small_of_text[text] or number_of_text(text) -- a look-up first: most are small
  if value == nil then
    if type(text) ~= 'string' or #text == 0 or #text > 17 or not string.find(text, '^%-?%d+$') then
      refuse(CODE.INVALID_REQUEST, field .. ': must be a decimal integer')
    end
    value = tonumber(text)
  end
  if value < minimum or value > maximum then
    refuse_out_of_range(field, minimum, maximum)
  end
  return value
end

-- An integer carried in a MessagePack argument: cmsgpack gives every number, integer or not, as a
-- Lua number. value % 1 is NaN for NaN and the infinities, so they are refused with the fractions.
local function check_integer(value, field, minimum, maximum)
  if not small_integers[value] and (type(value) ~= 'number' or value % 1 ~= 0) then
    refuse(CODE.INVALID_REQUEST, field .. ': must be an integer')
  end
  if value < minimum or value > maximum then
    refuse_out_of_range(field, minimum, maximum)
  end
  return value
end

-- The values of an argument that holds one MessagePack array of at most maximum_bytes bytes. The
-- bound comes first: cmsgpack builds the whole value before anything in it can be checked.
local function unpack_array(packed, field, maximum_bytes)
  if #packed > maximum_bytes then
    refuse(CODE.INVALID_REQUEST, field .. ': longer than ' .. maximum_bytes .. ' bytes')
  end
  local ok, next_offset, values = pcall(cmsgpack.unpack_one, packed, 0)
  if not ok or type(values) ~= 'table' or next_offset ~= -1 then
    refuse(CODE.INVALID_REQUEST, field .. ': must be one MessagePack array')
  end
  return values
end

-- creditd/contract.py's ID and SESSION_ID (session ids: printable ASCII without space and braces).
local ID_PATTERN = CONTRACT.id_pattern
local SESSION_ID_PATTERN = CONTRACT.session_id_pattern

-- The refusals name the allowed characters in contract.py's words (refusal_of gives the same ones).
local ALLOWED = { [ID_PATTERN] = CONTRACT.id_allowed, [SESSION_ID_PATTERN] = CONTRACT.session_id_allowed }

local function check_text(text, field, pattern, maximum_length)
  if type(text) ~= 'string' or #text == 0 then -- a number or a table from a MessagePack argument
    local empty = text == nil or text == ''
    refuse(CODE.INVALID_REQUEST, field .. (empty and ': must not be empty' or ': must be a string'))
  end
  if #text > maximum_length then
    refuse(CODE.INVALID_REQUEST, field .. ': longer than ' .. maximum_length .. ' characters')
  end
  if not string.find(text, pattern) then
    refuse(CODE.INVALID_REQUEST, field .. ': contains characters other than ' .. (ALLOWED[pattern] or 'the allowed'))
  end
  return text
end

-- Texts that matched their pattern, by pattern: a few gateway ids and actors (certificate names)
-- come with nearly every call, and a pattern match is dear (lib/numbers.lua's figures). Only
-- check_repeated_text remembers (an account's or a session's id seldom comes back before the memory
-- is full), at most REMEMBERED_LIMIT texts; the memory starts again when full. The type and the
-- length are checked every time.
local REMEMBERED_LIMIT = 256
local remembered, remembered_count = {}, 0

local function check_repeated_text(text, field, pattern, maximum_length)
  local matched = remembered[pattern]
  if matched ~= nil and matched[text] and #text <= maximum_length then
    return text
  end
  check_text(text, field, pattern, maximum_length)
  if remembered_count >= REMEMBERED_LIMIT then
    remembered, remembered_count, matched = {}, 0, nil
  end
  if matched == nil then
    matched = {}
    remembered[pattern] = matched
  end
  matched[text], remembered_count = true, remembered_count + 1
  return text
end

-- Free text (contact data): bounded, no control characters; may be empty.
local function check_free_text(text, field, maximum_length)
  if #text > maximum_length then
    refuse(CODE.INVALID_REQUEST, field .. ': longer than ' .. maximum_length .. ' bytes')
  end
  if string.find(text, '%c') then
    refuse(CODE.INVALID_REQUEST, field .. ': contains control characters')
  end
  return text
end

-- The caller's identity, always the last argument of a function that writes: a certificate name,
-- 'local' without TLS, 'sweeper:<owner>'. Recorded in every ledger entry; never part of a request's
-- fingerprint (a retransmission through another gateway node is the same request).
local ACTOR_PATTERN = '^[^|%c]+$'

local function check_actor(args)
  return check_repeated_text(args[#args], 'actor', ACTOR_PATTERN, 255)
end

-- A SHA-256 digest in hex (of a sign-in code, a session token, a voucher code): 64 of [0-9a-f].
local function check_hash(text, field)
  check_text(text, field, '^[0-9a-f]+$', 64)
  if #text ~= 64 then
    refuse(CODE.INVALID_REQUEST, field .. ': 64 lowercase hex digits (SHA-256)')
  end
  return text
end

local function check_argument_count(args, expected)
  if #args ~= expected then
    refuse(CODE.INVALID_REQUEST, 'arguments: expected ' .. expected .. ', got ' .. #args)
  end
end

-- Every function replies {code, message, body}; body is JSON or ''.
local function reply(code, message, body)
  return { code, message or '', body or '' }
end
