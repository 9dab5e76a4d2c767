--[=[
A charge's answer, in the format its caller asked for (ANSWER_FORMAT):

JSON  the answer is JSON [result, account_status, error, [[rating_group, result, unit, granted,
      validity_time_s, final_unit_action, redirect_url, throttled 0|1, max_bitrate_kbps, charged,
      tariff, tariff_time_change_ms, quota_threshold, quota_holding_time_s], ...]]
      (creditd/store/replies.py AnswerRecord), for the fronts that read the answer's fields.
PROTOBUF  the bytes of a creditd.v1.ChargeAnswer without its session_id and request_number (fields
      1 and 2, which the gRPC edge writes in front: its request has them), its fields in number
      order and those at their default left out, as protobuf's own encoder writes them. The gRPC
      edge sends them on as they are, without reading the answer into a message and writing it out
      again (some 25 000 instructions a Charge in the serving process). The result comes first when
      not 0, so the edge reads it from the first two bytes. PROTOBUF_FIELD holds the field numbers;
      tests/test_answer_formats.py checks them against the proto and both formats against each other.

uses: codes, numbers
]=]

-- Field numbers of creditd.v1.ChargeAnswer (answer_*) and creditd.v1.UnitGrant (grant_*).
local PROTOBUF_FIELD = {
  answer_result = 3,
  answer_grants = 4,
  answer_account_status = 5,
  answer_error = 6,
  grant_rating_group = 1,
  grant_result = 2,
  grant_unit = 3,
  grant_granted = 4,
  grant_validity_time_s = 5,
  grant_final_unit_action = 6,
  grant_redirect_url = 7,
  grant_throttled = 8,
  grant_max_bitrate_kbps = 9,
  grant_charged = 10,
  grant_tariff_time_change_ms = 11,
  grant_quota_threshold = 12,
  grant_quota_holding_time_s = 13,
  grant_tariff = 14,
}
local VARINT, LENGTH_DELIMITED = 0, 2

-- What the grant says of the session's end: the plan's final unit action (and its URL for a
-- redirect) when the grant is the last, else none.
local function final_action(plan, grant)
  if not grant.final then
    return FINAL_UNIT_ACTION.NONE, ''
  end
  local action = plan.final_unit_action
  return action, action == FINAL_UNIT_ACTION.REDIRECT and plan.redirect_url or ''
end

local function grant_json(plan, grant)
  local action, url = final_action(plan, grant)
  return '[' .. format_integer(grant.rating_group) .. ',' .. format_integer(grant.result) .. ','
    .. format_integer(grant.unit) .. ',' .. format_integer(grant.granted) .. ','
    .. format_integer(grant.validity_time_s) .. ',' .. format_integer(action) .. ',' .. json_string(url) .. ','
    .. (grant.throttled and '1,' .. format_integer(plan.throttle_kbps) or '0,0') .. ','
    .. format_integer(grant.charged) .. ',' .. json_string(grant.tariff) .. ','
    .. format_integer(grant.tariff_time_change_ms) .. ',' .. format_integer(grant.quota_threshold) .. ','
    .. format_integer(grant.quota_holding_time_s) .. ']'
end

local function answer_json(result, account_status, message, plan, grants)
  local listed -- most requests have one unit: its grant needs no list to join
  if #grants == 1 then
    listed = grant_json(plan, grants[1])
  else
    local parts = {}
    for _, grant in ipairs(grants) do
      parts[#parts + 1] = grant_json(plan, grant)
    end
    listed = table.concat(parts, ',')
  end
  return '[' .. format_integer(result) .. ',' .. format_integer(account_status) .. ',' .. json_string(message)
    .. ',[' .. listed .. ']]'
end

-- Protobuf's bytes. Building strings is what costs in Redis' Lua (each new string is hashed and
-- interned), so a field's key and value are kept together as one string per field and value
-- (field_bytes), and a message is one concatenation of them. Answers repeat most of their values
-- (codes, units, quotas, validity times, tariff names): at most CACHE.limit such strings are kept,
-- begun again when full. The keys are filled at the first call (string.char is out of reach while
-- the library loads). An answer's numbers are never negative (a negative int64 would take ten bytes
-- of two's complement): one is our bug, and an error.
local CACHE = { of_field = {}, count = 0, limit = 4096 }
local key_of = {}

local function fill_keys()
  for name, number in pairs(PROTOBUF_FIELD) do
    local wire_type = VARINT
    if name == 'answer_grants' or name == 'answer_error' or name == 'grant_redirect_url' or name == 'grant_tariff' then
      wire_type = LENGTH_DELIMITED
    end
    key_of[name] = string.char(number * 8 + wire_type)
  end
end

local function varint(value)
  if value < 128 then
    return string.char(value)
  end
  local bytes = {}
  while value >= 128 do
    local group = value % 128
    bytes[#bytes + 1] = group + 128
    value = (value - group) / 128
  end
  bytes[#bytes + 1] = value
  return string.char(unpack(bytes))
end

local function encoded_field(name, value)
  if type(value) == 'string' then
    return key_of[name] .. varint(#value) .. value
  end
  if value % 1 ~= 0 or value < 0 or value > MAX_EXACT_INTEGER then
    error('answer: ' .. name .. ' is not an exact non-negative integer: ' .. tostring(value))
  end
  return key_of[name] .. varint(value)
end

-- The field's key and value as protobuf writes them; '' for a value at its default (0 or '').
local function field_bytes(name, value)
  if value == 0 or value == '' then
    return ''
  end
  local of_value = CACHE.of_field[name]
  local known = of_value and of_value[value]
  if known then
    return known
  end
  known = encoded_field(name, value)
  if #known <= 64 then
    if CACHE.count >= CACHE.limit then
      CACHE.of_field, CACHE.count = {}, 0
    end
    of_value = CACHE.of_field[name]
    if of_value == nil then
      of_value = {}
      CACHE.of_field[name] = of_value
    end
    of_value[value], CACHE.count = known, CACHE.count + 1
  end
  return known
end

local function grant_protobuf(plan, grant)
  local action, url = final_action(plan, grant)
  local throttled = grant.throttled and 1 or 0
  return field_bytes('grant_rating_group', grant.rating_group) .. field_bytes('grant_result', grant.result)
    .. field_bytes('grant_unit', grant.unit) .. field_bytes('grant_granted', grant.granted)
    .. field_bytes('grant_validity_time_s', grant.validity_time_s) .. field_bytes('grant_final_unit_action', action)
    .. field_bytes('grant_redirect_url', url) .. field_bytes('grant_throttled', throttled)
    .. field_bytes('grant_max_bitrate_kbps', throttled == 1 and plan.throttle_kbps or 0)
    .. field_bytes('grant_charged', grant.charged)
    .. field_bytes('grant_tariff_time_change_ms', grant.tariff_time_change_ms)
    .. field_bytes('grant_quota_threshold', grant.quota_threshold)
    .. field_bytes('grant_quota_holding_time_s', grant.quota_holding_time_s) .. field_bytes('grant_tariff', grant.tariff)
end

local function answer_protobuf(result, account_status, message, plan, grants)
  if key_of.answer_result == nil then
    fill_keys()
  end
  local listed = ''
  for _, grant in ipairs(grants) do
    local encoded = grant_protobuf(plan, grant)
    listed = listed .. key_of.answer_grants .. varint(#encoded) .. encoded
  end
  return field_bytes('answer_result', result) .. listed .. field_bytes('answer_account_status', account_status)
    .. field_bytes('answer_error', message)
end

-- The answer in `format` (ANSWER_FORMAT); plan may be nil when there are no grants (a refusal).
local function encode_answer(format, result, account_status, message, plan, grants)
  if format == ANSWER_FORMAT.PROTOBUF then
    return answer_protobuf(result, account_status, message, plan, grants)
  end
  return answer_json(result, account_status, message, plan, grants)
end
