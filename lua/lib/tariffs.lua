--[=[
Tariff selection (docs/design.md, Rating). A unit's context is its service_id, the destination set of
the called number (longest matching prefix, '' for none) and the zone of the visited PLMN ('home',
a configured zone, or 'roaming'). Its tariff at an instant is the first of its rating group's tariffs
(CONFIG orders them most criteria first; creditd/config/rating.py refuses ties) whose criteria all
hold, timings judged in the plan's local time. A grant whose validity crosses an instant where that
choice changes carries the change (Gy Tariff-Time-Change) and the tariff after it; a second change
within the validity ends the grant there, since a grant carries one.
Local time: UTC offsets come precomputed per time zone (CONFIG.rating.time_zones: the instants the
offset changes and the offset from each on; Lua has no time zone database).
uses: codes, numbers, checks, calendar
]=]
local MINUTE_MS = 60000
local HOME_ZONE, ROAMING_ZONE = 'home', 'roaming'
local CALLED_PARTY_PATTERN = '^%+?%d*$'
local VISITED_PLMN_PATTERN = '^%d%d%d%d%d%d?$'

-- A request's called_party argument: its digits (E.164, a leading '+' dropped), '' for none.
local function parse_called_party(text)
  local digits = string.byte(text, 1) == 43 and string.sub(text, 2) or text -- without its '+'
  if string.find(text, CALLED_PARTY_PATTERN) == nil or #digits > 15 then
    refuse(CODE.INVALID_REQUEST, 'called_party: at most 15 digits (E.164), a leading + allowed')
  end
  return digits
end

-- A request's visited_plmn argument: MCC+MNC, '' for the home network.
local function parse_visited_plmn(text)
  if text ~= '' and string.find(text, VISITED_PLMN_PATTERN) == nil then
    refuse(CODE.INVALID_REQUEST, 'visited_plmn: MCC+MNC, 5 or 6 digits, or empty for the home network')
  end
  return text
end

-- The destination set of a called number (digits only), '' when no prefix matches: the longest
-- prefix in the number's bucket (CONFIG.rating.prefix_buckets, by its first digits; see
-- creditd/store/rating_tables.py), else the longest of the short prefixes.
local function destination_of(called_party)
  local rating = CONFIG.rating
  local head_digits = rating.prefix_bucket_digits
  local bucket = rating.prefix_buckets[string.sub(called_party, 1, head_digits)]
  if bucket then
    for digits = math.min(#called_party, rating.max_prefix_digits), head_digits, -1 do
      local _, last = string.find(bucket, ',' .. string.sub(called_party, 1, digits) .. '=', 1, true)
      if last then
        return string.match(bucket, '^[^,]+', last + 1)
      end
    end
  end
  for digits = math.min(#called_party, head_digits - 1), 1, -1 do
    local name = rating.short_prefixes[string.sub(called_party, 1, digits)]
    if name then
      return name
    end
  end
  return ''
end

local function zone_of(plan, visited_plmn)
  if visited_plmn == '' or plan.home_plmns[visited_plmn] then
    return HOME_ZONE
  end
  return CONFIG.rating.zone_of_plmn[visited_plmn] or ROAMING_ZONE
end

-- The index of the offset in force at an instant (binary search; before the first change, the first).
local function offset_index(zone, instant_ms)
  local starts = zone.starts_ms
  local low, high = 1, #starts
  while low < high do
    local middle = floor_divide(low + high + 1, 2)
    if starts[middle] <= instant_ms then
      low = middle
    else
      high = middle - 1
    end
  end
  return low
end

local function utc_offset_ms(time_zone, instant_ms)
  local zone = CONFIG.rating.time_zones[time_zone]
  return zone.offsets_s[offset_index(zone, instant_ms)] * 1000
end

-- Local day number (days since 1970-01-01) and minute of the day of an instant.
local function local_time(time_zone, instant_ms)
  local local_ms = instant_ms + utc_offset_ms(time_zone, instant_ms)
  local day = floor_divide(local_ms, DAY_MS)
  return day, floor_divide(local_ms - day * DAY_MS, MINUTE_MS)
end

-- 0 is Monday; 1970-01-01 was a Thursday.
local function day_holds(timing, day)
  return (timing.weekdays == nil or timing.weekdays[(day + 3) % 7] == true)
    and (timing.dates == nil or timing.dates[day] == true)
end

-- A band crossing midnight belongs to the day it starts.
local function timing_holds(timing, day, minute)
  local start, finish = timing.start_minute, timing.end_minute
  if start == nil then
    return day_holds(timing, day)
  end
  if start < finish then
    return minute >= start and minute < finish and day_holds(timing, day)
  end
  return (minute >= start and day_holds(timing, day)) or (minute < finish and day_holds(timing, day - 1))
end

local function tariff_fits(tariff, context)
  return (tariff.service_ids == nil or tariff.service_ids[context.service_id] == true)
    and (tariff.destinations == nil or tariff.destinations[context.destination] == true)
    and (tariff.zones == nil or tariff.zones[context.zone] == true)
end

-- The tariff of a rating group for a unit's context at an instant; nil when none matches.
local function tariff_at(plan, group, context, instant_ms)
  local day, minute
  for _, tariff in ipairs(group.tariffs) do
    if tariff_fits(tariff, context) then
      if tariff.timing == nil then
        return tariff
      end
      if day == nil then
        day, minute = local_time(plan.time_zone, instant_ms)
      end
      if timing_holds(CONFIG.rating.timings[tariff.timing], day, minute) then
        return tariff
      end
    end
  end
  return nil
end

-- The local minutes at which a timing of the fitting tariffs can start or stop holding.
local function edge_minutes(group, context)
  local minutes = { 0 }
  for _, tariff in ipairs(group.tariffs) do
    if tariff.timing and tariff_fits(tariff, context) then
      local timing = CONFIG.rating.timings[tariff.timing]
      if timing.start_minute then
        minutes[#minutes + 1] = timing.start_minute
        minutes[#minutes + 1] = timing.end_minute
      end
    end
  end
  return minutes
end

-- Every instant in (from_ms, until_ms) at which the choice of tariff can change, ascending: local
-- midnights and band edges (at each UTC offset in force over the window, where that offset holds
-- then), and the instants the offset itself changes.
local function candidate_instants(plan, group, context, from_ms, until_ms)
  local zone = CONFIG.rating.time_zones[plan.time_zone]
  local instants, seen = {}, {}
  local function add(instant)
    if instant > from_ms and instant < until_ms and not seen[instant] then
      seen[instant] = true
      instants[#instants + 1] = instant
    end
  end
  local first, last = offset_index(zone, from_ms), offset_index(zone, until_ms)
  for index = first + 1, last do
    add(zone.starts_ms[index])
  end
  local minutes = edge_minutes(group, context)
  for index = first, last do
    local offset_ms = zone.offsets_s[index] * 1000
    for day = floor_divide(from_ms + offset_ms, DAY_MS), floor_divide(until_ms + offset_ms, DAY_MS) do
      for _, minute in ipairs(minutes) do
        local instant = day * DAY_MS + minute * MINUTE_MS - offset_ms
        if utc_offset_ms(plan.time_zone, instant) == offset_ms then
          add(instant)
        end
      end
    end
  end
  table.sort(instants)
  return instants
end

-- The first of instants (from position on) at which the tariff differs from `current`: the instant,
-- the tariff from then (nil: none matches) and its position.
local function next_change(plan, group, context, current, instants, position)
  for index = position, #instants do
    local tariff = tariff_at(plan, group, context, instants[index])
    if tariff ~= current then
      return instants[index], tariff, index
    end
  end
  return nil, nil, nil
end

-- Until when a timed group's choice of tariff for a context holds, remembered per group and context
-- (service_id, destination, zone): { tariff, from_ms, until_ms }, the tariff chosen at every instant
-- of [from_ms, until_ms), until_ms being the first instant the choice changes, or from_ms +
-- STABLE_CHOICES.horizon_ms when none does before. Finding the instants a grant's validity spans cost
-- a timed grant some 12 000 instructions (loadtest.redis_instructions); a choice changes a few times
-- a day. Lost at a reload of the library, which is also how new tariffs arrive; begun again once it
-- holds STABLE_CHOICES.limit choices, which bounds its memory.
local STABLE_CHOICES = { by_group = {}, count = 0, limit = 4096, horizon_ms = DAY_MS }

local function remembered_choice(group, context)
  local by_context = STABLE_CHOICES.by_group[group]
  local by_zone = by_context and by_context[context.zone]
  local by_destination = by_zone and by_zone[context.destination]
  return by_destination and by_destination[context.service_id]
end

-- The tariff in force at now_ms for a context: a timed group's remembered choice while its window
-- holds (the local time, its day and minute, need not be worked out: some 2 000 instructions a timed
-- unit), else chosen afresh.
local function tariff_now(plan, group, context, now_ms)
  if group.timed then
    local choice = remembered_choice(group, context)
    if choice and choice.from_ms <= now_ms and now_ms < choice.until_ms then
      return choice.tariff
    end
  end
  return tariff_at(plan, group, context, now_ms)
end

local function stable_choice(plan, group, context, now_ms, tariff)
  local choice = remembered_choice(group, context)
  if choice and choice.tariff == tariff and choice.from_ms <= now_ms and now_ms < choice.until_ms then
    return choice
  end
  local horizon_ms = now_ms + STABLE_CHOICES.horizon_ms
  local instants = candidate_instants(plan, group, context, now_ms, horizon_ms)
  choice = { tariff = tariff, from_ms = now_ms, until_ms = next_change(plan, group, context, tariff, instants, 1)
    or horizon_ms }
  if STABLE_CHOICES.count >= STABLE_CHOICES.limit then
    STABLE_CHOICES.by_group, STABLE_CHOICES.count = {}, 0
  end
  local by_context = STABLE_CHOICES.by_group[group] or {}
  STABLE_CHOICES.by_group[group] = by_context
  local by_zone = by_context[context.zone] or {}
  by_context[context.zone] = by_zone
  local by_destination = by_zone[context.destination] or {}
  by_zone[context.destination] = by_destination
  by_destination[context.service_id], STABLE_CHOICES.count = choice, STABLE_CHOICES.count + 1
  return choice
end

-- How a grant made now at `tariff` (tariff_at now) is priced: { tariff, deadline_ms, change_ms (0:
-- none), after (the tariff from change_ms on) }.
local function price_grant(plan, group, context, now_ms, tariff)
  local pricing = { tariff = tariff, deadline_ms = now_ms + tariff.validity_time_s * 1000, change_ms = 0 }
  if not group.timed or pricing.deadline_ms <= stable_choice(plan, group, context, now_ms, tariff).until_ms then
    return pricing
  end
  local instants = candidate_instants(plan, group, context, now_ms, pricing.deadline_ms)
  local change_ms, after, position = next_change(plan, group, context, tariff, instants, 1)
  if change_ms == nil then
    return pricing
  end
  if after == nil then -- nothing prices what follows: the grant ends where its tariff does
    pricing.deadline_ms = change_ms
    return pricing
  end
  pricing.change_ms, pricing.after = change_ms, after
  local second_ms = next_change(plan, group, context, after, instants, position + 1)
  if second_ms then
    pricing.deadline_ms = second_ms
  end
  return pricing
end

-- The context of one unit of a request: service_id, destination and zone.
local function unit_context(plan, request, unit)
  return { service_id = unit.service_id, destination = request.destination, zone = zone_of(plan, request.visited_plmn) }
end
