--[=[
quote_price — what units would cost now at an account's tariffs, charging nothing (a Diameter
PRICE_ENQUIRY, RFC 8506 §6.1). Read-only: the account's due changes (a plan change that took effect)
are applied in memory only, so a unit is priced by the tariff a charge made now would choose (lib/
tariffs.lua: rating group, service_id, destination of the called party, zone of the visited network,
time of day), in whole blocks (lib/rating.lua price_of). The balance, buckets and bonus money are not
consulted: a price enquiry checks no balance and reserves nothing.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>    packed account (lib/account.lua)
ARGV[1] now_ms          integer, Unix ms, from the server's clock: the instant whose tariffs apply
ARGV[2] account_id      [A-Za-z0-9._:-]{1,64}
ARGV[3] called_party    digits (E.164, a leading '+' ignored), at most 15; '' for data
ARGV[4] visited_plmn    MCC+MNC, 5 or 6 digits; '' for the home network
ARGV[5] unit_count      integer 1..max_units_per_request
ARGV[6 + 3i ..]         per unit: rating_group (0..2^32-1), service_id (0..2^32-1, 0 = none), requested
                        (units, 0..max_units; 0 = the tariff's default grant)
Returns {code, message, quote}: quote is JSON
  [result, currency, error, [[rating_group, result, unit, units, price_minor, tariff], ...]]
  one entry per unit in the order given: units is what was priced (requested, or the default grant),
  price_minor its cost in minor units of the plan's currency; a unit no tariff prices has result
  RATING_FAILED, unit 0, price 0 and tariff ''. result is SUCCESS when every unit was priced, else
  the first failure, with error saying why.
Codes: SUCCESS; INVALID_REQUEST (a bad argument, a rating group twice); USER_UNKNOWN; RATING_FAILED
  (a unit costs more than max_amount_minor). Writes nothing.
]=]

local QUOTE_UNIT_ARGUMENTS, FIRST_QUOTE_UNIT_ARGUMENT = 3, 6

local function parse_quote_units(args, count)
  local units, seen = {}, {}
  for index = 0, count - 1 do
    local base = FIRST_QUOTE_UNIT_ARGUMENT + index * QUOTE_UNIT_ARGUMENTS
    local field = 'units[' .. format_integer(index) .. ']'
    local unit = {
      field = field,
      rating_group = parse_integer(args[base], field .. '.rating_group', 0, MAX_UINT32),
      service_id = parse_integer(args[base + 1], field .. '.service_id', 0, MAX_UINT32),
      requested = parse_integer(args[base + 2], field .. '.requested', 0, CONFIG.limits.max_units),
    }
    if seen[unit.rating_group] then
      refuse(CODE.INVALID_REQUEST, field .. '.rating_group: appears twice in one request')
    end
    seen[unit.rating_group] = true
    units[#units + 1] = unit
  end
  return units
end

local function parse_quote_request(keys, args)
  if #args < FIRST_QUOTE_UNIT_ARGUMENT then
    refuse(CODE.INVALID_REQUEST, 'arguments: expected at least ' .. FIRST_QUOTE_UNIT_ARGUMENT .. ', got ' .. #args)
  end
  local now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER)
  check_text(args[2], 'account_id', ID_PATTERN, 64)
  local called_party = parse_called_party(args[3])
  local visited_plmn = parse_visited_plmn(args[4])
  local count = parse_integer(args[5], 'units', 1, CONFIG.limits.max_units_per_request)
  check_argument_count(args, FIRST_QUOTE_UNIT_ARGUMENT - 1 + QUOTE_UNIT_ARGUMENTS * count)
  local units = parse_quote_units(args, count)
  local account = load_existing_account(keys.account)
  apply_due_changes(account, now_ms) -- in memory: never saved
  return {
    now_ms = now_ms, account = account, units = units, visited_plmn = visited_plmn,
    destination = destination_of(called_party),
  }
end

-- One unit's entry: its price at the tariff in force now for its context, or why none prices it.
local function quote_unit(plan, request, unit)
  local group = plan and plan.rating_groups[unit.rating_group]
  local context = plan and unit_context(plan, request, unit)
  local tariff = group and tariff_at(plan, group, context, request.now_ms)
  if tariff == nil then
    local why = plan == nil and ('the account plan ' .. request.account.plan .. ' is not configured')
      or ('no tariff of rating group ' .. format_integer(unit.rating_group) .. ' for service_id '
        .. format_integer(unit.service_id) .. ', destination "' .. context.destination .. '" (called_party), zone '
        .. context.zone .. ' (visited_plmn)')
    return { result = CODE.RATING_FAILED, unit = 0, units = unit.requested, price = 0, tariff = '' },
      unit.field .. ': ' .. why
  end
  local units = unit.requested > 0 and unit.requested or tariff.default_grant
  local price = price_of(units, tariff.price_minor, tariff.block_size, unit.field .. '.requested')
  return { result = CODE.SUCCESS, unit = group.unit, units = units, price = price, tariff = tariff.name }, nil
end

local function quote_json(plan, request)
  local entries, result, first_error = {}, CODE.SUCCESS, ''
  for _, unit in ipairs(request.units) do
    local entry, why = quote_unit(plan, request, unit)
    if why and result == CODE.SUCCESS then
      result, first_error = entry.result, why
    end
    entries[#entries + 1] = '[' .. format_integer(unit.rating_group) .. ',' .. format_integer(entry.result) .. ','
      .. format_integer(entry.unit) .. ',' .. format_integer(entry.units) .. ',' .. format_integer(entry.price)
      .. ',' .. json_string(entry.tariff) .. ']'
  end
  local currency = plan and plan.currency or ''
  return '[' .. format_integer(result) .. ',' .. json_string(currency) .. ',' .. json_string(first_error) .. ',['
    .. table.concat(entries, ',') .. ']]'
end

local function priced(keys, args)
  local request = parse_quote_request(keys, args)
  return quote_json(CONFIG.plans[request.account.plan], request)
end

local function quote_price(raw_keys, args)
  local keys = named_keys('quote_price', raw_keys)
  local done, outcome = run_checked(priced, keys, args)
  if not done then
    return reply(outcome.code, outcome.message)
  end
  return reply(CODE.SUCCESS, '', outcome)
end

redis.register_function { function_name = 'quote_price', callback = quote_price, flags = { 'no-writes' } }
