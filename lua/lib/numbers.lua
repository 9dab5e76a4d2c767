--[=[
Integers and their text, divisions, JSON strings.

Lua numbers are doubles: integers are exact only up to 2^53 - 1. Every integer enters a function as a
decimal string checked by parse_integer (no hex, nan, inf or exponent; at most 17 characters) and
leaves through format_integer (%d), because tostring prints large numbers as 1e+14 and cjson.encode
rounds them to 14 digits. JSON replies are therefore assembled by hand; cjson is used only to quote
strings.

uses: codes
]=]
local MAX_EXACT_INTEGER = CONTRACT.max_exact_integer -- creditd/contract.py
local MAX_UINT32 = CONTRACT.max_uint32

-- Numbers and their text. Both ways are dear in Redis' Lua (instructions per call under callgrind,
-- loadtest.redis_instructions): string.format('%d') about 2 000, tostring or a number joined with '..'
-- 2 600 to 4 600 (they print through '%.14g'), tonumber 1 500 to 2 000, a pattern check of digits
-- 1 800; a table look-up 300. A charge turns some forty numbers into text and back, most of them small
-- (codes, zeros, counts, validity times), so 0..SMALL_INTEGER_LIMIT - 1 are kept both ways, filled
-- at the first call (a library's globals, string.format among them, are out of reach while it
-- loads). On the charge path numbers become text only through format_integer, never by '..'.
local format_integer, number_of_text, stored_number
-- The number of each canonical text of 0..SMALL_INTEGER_LIMIT - 1 (and of the result codes), for
-- callers that look one up before calling number_of_text: empty until the first call fills it.
local small_of_text = {}
local SMALL_INTEGER_LIMIT = 1024
-- true for each of 0..SMALL_INTEGER_LIMIT - 1, filled at load: a number read from MessagePack is
-- looked up here before the dearer type() and fraction checks (lib/checks.lua check_integer).
local small_integers = {}
for value = 0, SMALL_INTEGER_LIMIT - 1 do
  small_integers[value] = true
end
do
  local format, text_of_small = nil, {}

  local function fill()
    format = string.format
    for value = 0, SMALL_INTEGER_LIMIT - 1 do
      local text = format('%d', value)
      text_of_small[value], small_of_text[text] = text, value
    end
    for _, code in pairs(CODE) do -- every answer carries result codes (2001, 5030, ...)
      local text = format('%d', code)
      text_of_small[code], small_of_text[text] = text, code
    end
  end

  format_integer = function(value)
    local known = text_of_small[value]
    if known then
      return known
    end
    if format == nil then
      fill()
      return format_integer(value)
    end
    if value % 1 ~= 0 or value > MAX_EXACT_INTEGER or value < -MAX_EXACT_INTEGER then
      error('format_integer: not an exact integer: ' .. tostring(value))
    end
    return format('%d', value)
  end

  -- The number a canonical decimal text of 0..SMALL_INTEGER_LIMIT - 1 stands for; nil for any other
  -- text (callers then check and convert it themselves).
  number_of_text = function(text)
    local value = small_of_text[text]
    if value == nil and format == nil then
      fill()
      value = small_of_text[text]
    end
    return value
  end

  -- tonumber for the decimal integers this library stored itself.
  stored_number = function(text)
    return small_of_text[text] or (format == nil and number_of_text(text)) or tonumber(text)
  end
end

-- How many keys a table has (Lua 5.1's # counts only an array's part).
local function count_keys(map)
  local count = 0
  for _ in pairs(map) do
    count = count + 1
  end
  return count
end

-- Exact floor(a / b) for 0 <= a, 0 < b below 2^53: the double quotient may round up by one. No
-- assert, no math.floor: a charge divides some twenty times, and a global function call costs Lua in
-- Redis some 500 instructions; q - q % 1 floors a positive q within the VM.
local function floor_divide(dividend, divisor)
  if dividend < 0 or divisor <= 0 then
    error('floor_divide: operands must be positive')
  end
  local quotient = dividend / divisor
  quotient = quotient - quotient % 1
  while quotient * divisor > dividend do
    quotient = quotient - 1
  end
  while (quotient + 1) * divisor <= dividend do
    quotient = quotient + 1
  end
  return quotient
end

local function ceil_divide(dividend, divisor)
  local quotient = floor_divide(dividend, divisor)
  if quotient * divisor < dividend then
    return quotient + 1
  end
  return quotient
end

-- The JSON text of a string. Answers repeat a few short ones (tariff names, '' for no message or
-- URL), and cjson.encode costs a call some 600 instructions each: those up to 64 bytes are kept,
-- JSON_TEXTS.limit of them at most, begun again when full.
local JSON_TEXTS = { quoted = {}, count = 0, limit = 1024 }

local function json_string(text)
  local quoted = JSON_TEXTS.quoted[text]
  if quoted ~= nil then
    return quoted
  end
  quoted = cjson.encode(text)
  if #text <= 64 then
    if JSON_TEXTS.count >= JSON_TEXTS.limit then
      JSON_TEXTS.quoted, JSON_TEXTS.count = {}, 0
    end
    JSON_TEXTS.quoted[text], JSON_TEXTS.count = quoted, JSON_TEXTS.count + 1
  end
  return quoted
end
