--[=[
Calendar arithmetic in UTC on integer milliseconds (no os.date inside Redis functions): the billing
cycle an instant falls in. A cycle starts at 00:00 UTC on the account's billing_cycle_day (1..28, so
every month has it) and is numbered year * 12 + month - 1 of its start.
uses: numbers
]=]
local DAY_MS = 86400000

-- Year, month (1..12) and day (1..31) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
local function civil_from_days(days)
  local z = days + 719468
  local era = floor_divide(z, 146097)
  local day_of_era = z - era * 146097
  local year_of_era = floor_divide(day_of_era - floor_divide(day_of_era, 1460) + floor_divide(day_of_era, 36524)
    - floor_divide(day_of_era, 146096), 365)
  local day_of_year = day_of_era - (365 * year_of_era + floor_divide(year_of_era, 4) - floor_divide(year_of_era, 100))
  local month_index = floor_divide(5 * day_of_year + 2, 153)
  local day = day_of_year - floor_divide(153 * month_index + 2, 5) + 1
  local month = month_index < 10 and month_index + 3 or month_index - 9
  local year = year_of_era + era * 400 + (month <= 2 and 1 or 0)
  return year, month, day
end

-- The day's date is kept from the last call: a charge asks for the same day several times (the data
-- overage cap counted and checked), and the date costs some 5 000 instructions.
local billing_cycle_of
do
  local known_day, known_year, known_month, known_date = nil, 0, 0, 0

  billing_cycle_of = function(now_ms, billing_cycle_day)
    local days = floor_divide(now_ms, DAY_MS)
    if days ~= known_day then
      known_year, known_month, known_date = civil_from_days(days)
      known_day = days
    end
    local index = known_year * 12 + known_month - 1
    if known_date < billing_cycle_day then
      index = index - 1
    end
    return index
  end
end

-- Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil), for years from 0.
local function days_from_civil(year, month, day)
  year = month <= 2 and year - 1 or year
  local era = floor_divide(year, 400)
  local year_of_era = year - era * 400
  local day_of_year = floor_divide(153 * (month > 2 and month - 3 or month + 9) + 2, 5) + day - 1
  local day_of_era = year_of_era * 365 + floor_divide(year_of_era, 4) - floor_divide(year_of_era, 100) + day_of_year
  return era * 146097 + day_of_era - 719468
end

-- When billing cycle `index` (as billing_cycle_of numbers it) ends: 00:00 UTC on the cycle day of the
-- month after its start.
local function billing_cycle_end_ms(index, billing_cycle_day)
  local next_index = index + 1
  local year = floor_divide(next_index, 12)
  return days_from_civil(year, next_index - year * 12 + 1, billing_cycle_day) * DAY_MS
end

-- The day of the month of an instant, clamped to 28: a new account's billing cycle day.
local function cycle_day_of(now_ms)
  local _, _, day = civil_from_days(floor_divide(now_ms, DAY_MS))
  return math.min(day, 28)
end
