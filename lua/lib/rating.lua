--[=[
Rating: which source pays for a rating group's units, what a grant may be, what usage costs.

Consumption order (docs/design.md): serving buckets by priority, then earliest expiry; then main money at
the tariff price, unless a CAP or THROTTLE data bucket for the group forbids overage.

A reservation is what one session holds for one rating group: a table of money, bucket_units, bucket_id,
price_minor, block_size, unit, validity_time_s, deadline_ms, throttled, tariff, change_ms, price_after,
block_after, tariff_after, zone, destination, stored in the session as one row of these in this order
after its rating group (creditd/store/session_codec.py StoredReservation, lib/session.lua). A session
hash written by an older version holds each as the text of these joined by '|' in a field
reservation:<rating_group> (decode_reservation).
It keeps the prices it was granted at (before and after a tariff time change), so usage is rated at
them even after a price change or a move to another zone; zone and destination are the grant's.
A money reservation may hold part of its money in a bonus bucket (lib/bonus.lua): bucket_id names it,
bucket_units is that part, money the main part.
uses: codes, numbers, checks, account, bonus, credit
]=]
local RESERVATION_PREFIX = 'reservation:'
local RESERVATION_PATTERN = '^(%d+)|(%d+)|([%w%._:%-]*)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([01])|([%w%._:%-]*)|(%d+)|'
  .. '(%d+)|(%d+)|([%w%._:%-]*)|([%w%._:%-]*)|([%w%._:%-]*)$'
-- Written before the rating engine: one price, home zone.
local OLDER_RESERVATION_PATTERN = '^(%d+)|(%d+)|([%w%._:%-]*)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([01])$'

local function decode_reservation(text)
  local money, bucket_units, bucket_id, price_minor, block_size, unit, validity_time_s, deadline_ms, throttled,
    tariff, change_ms, price_after, block_after, tariff_after, zone, destination = string.match(text, RESERVATION_PATTERN)
  if money == nil then
    money, bucket_units, bucket_id, price_minor, block_size, unit, validity_time_s, deadline_ms, throttled =
      string.match(text, OLDER_RESERVATION_PATTERN)
    tariff, change_ms, price_after, block_after, tariff_after, zone, destination = '', '0', '0', '1', '', 'home', ''
  end
  assert(money, 'corrupt reservation')
  return {
    money = stored_number(money), bucket_units = stored_number(bucket_units), bucket_id = bucket_id,
    price_minor = stored_number(price_minor), block_size = stored_number(block_size), unit = stored_number(unit),
    validity_time_s = stored_number(validity_time_s), deadline_ms = stored_number(deadline_ms), throttled = throttled == '1',
    tariff = tariff, change_ms = stored_number(change_ms), price_after = stored_number(price_after),
    block_after = stored_number(block_after), tariff_after = tariff_after, zone = zone, destination = destination,
  }
end

-- The first serving bucket with free units, and the CAP/THROTTLE policy of serving data buckets that
-- forbids falling through to money (nil when overage is allowed).
local function select_bucket(account, unit, rating_group, zone, now_ms)
  local chosen, blocking_policy = nil, nil
  if next(account.buckets) == nil then -- most lines: no list to build and sort, three times a report
    return chosen, blocking_policy
  end
  if account.ordered == nil then
    account.ordered = ordered_buckets(account)
  end
  for _, bucket in ipairs(account.ordered) do
    if bucket_serves(bucket, unit, rating_group, zone, now_ms) then
      if chosen == nil and bucket.remaining > bucket.reserved then
        chosen = bucket
      end
      if blocking_policy == nil and unit == UNIT.BYTES
          and (bucket.policy == POLICY.CAP or bucket.policy == POLICY.THROTTLE) then
        blocking_policy = bucket.policy
      end
    end
  end
  return chosen, blocking_policy
end

local function price_of(units, price_minor, block_size, field)
  if units == 0 or price_minor == 0 then
    return 0
  end
  local cost = ceil_divide(units, block_size) * price_minor
  if cost > CONFIG.limits.max_amount_minor then
    refuse(CODE.RATING_FAILED, field .. ': costs more than the maximum amount of one charge')
  end
  return cost
end

-- The usage of one unit split by a grant's tariff time change: the parts before and after it, each
-- {units, from_buckets, charged, tariff}. `taken` units came from buckets (the earliest ones), the
-- last `after_units` (Gy Tariff-Change-Usage) after the change; `free` when a CAP or THROTTLE bucket
-- forbids paying the rest from money.
local function usage_parts(reservation, used, taken, after_units, free, field)
  local after = math.min(used, after_units)
  local before = used - after
  local before_buckets = math.min(taken, before)
  local after_buckets = taken - before_buckets
  local parts = {}
  for side = 1, 2 do -- before the change, then after it (a list of the two would be tables made each call)
    local units, from_buckets, price_minor, block_size, tariff =
      before, before_buckets, reservation.price_minor, reservation.block_size, reservation.tariff
    if side == 2 then
      units, from_buckets, price_minor, block_size, tariff =
        after, after_buckets, reservation.price_after, reservation.block_after, reservation.tariff_after
    end
    if units > 0 then
      local charged = free and 0 or price_of(units - from_buckets, price_minor, block_size, field)
      parts[#parts + 1] = { units = units, from_buckets = from_buckets, charged = charged, tariff = tariff,
        block = block_size }
    end
  end
  local cost = (parts[1] and parts[1].charged or 0) + (parts[2] and parts[2].charged or 0)
  if cost > CONFIG.limits.max_amount_minor then
    refuse(CODE.RATING_FAILED, field .. ': costs more than the maximum amount of one charge')
  end
  return cost, parts
end

local function release_reservation(account, reservation)
  account.reserved = account.reserved - reservation.money
  assert(account.reserved >= 0, 'release makes reserved negative')
  local bucket = account.buckets[reservation.bucket_id]
  if bucket and reservation.bucket_units > 0 then
    bucket.reserved = bucket.reserved - reservation.bucket_units
    assert(bucket.reserved >= 0, 'release makes a bucket reserve negative')
    account.dirty_buckets[bucket.id] = true
  end
end

-- Takes up to `units` free units from serving buckets in consumption order; returns what is left.
local function take_from_buckets(account, unit, rating_group, zone, units, now_ms)
  while units > 0 do
    local bucket = select_bucket(account, unit, rating_group, zone, now_ms)
    if bucket == nil then
      return units
    end
    local taken = math.min(units, bucket.remaining - bucket.reserved)
    bucket.remaining = bucket.remaining - taken
    account.dirty_buckets[bucket.id] = true
    units = units - taken
  end
  return 0
end

-- Units granted from a bucket are consumed from that bucket, even if it expired since the grant.
local function take_from_reserved_bucket(account, reservation, units)
  local bucket = account.buckets[reservation.bucket_id]
  if bucket == nil or reservation.bucket_units == 0 then
    return units
  end
  local taken = math.min(units, reservation.bucket_units, bucket.remaining - bucket.reserved)
  bucket.remaining = bucket.remaining - taken
  account.dirty_buckets[bucket.id] = true
  return units - taken
end

local function debit_money(account, unit, cost, now_ms)
  if cost > 0 and unit == UNIT.BYTES then
    count_data_overage(account, CONFIG.plans[account.plan], cost, now_ms)
  end
  return cost
end

-- Whether a CAP or THROTTLE bucket serving (unit, rating group, zone) forbids paying from money.
local function money_blocked(account, unit, rating_group, zone, now_ms)
  local _, blocking_policy = select_bucket(account, unit, rating_group, zone, now_ms)
  return blocking_policy ~= nil
end

-- The money a unit's usage costs: bonus money serving it pays first (`own`: the bonus bucket its
-- reservation held), main money the rest. Returns the cost and the part bonus paid, spread over
-- the usage parts.
local function pay_usage(account, unit, cost, parts, rating_group, zone, own, now_ms)
  local bonus = cost > 0 and pay_from_bonus(account, cost, rating_group, zone, own, now_ms) or 0
  spread_bonus(parts, bonus)
  debit_money(account, unit, cost - bonus, now_ms) -- the data overage cap counts main money only
  return cost, parts, bonus
end

-- Rates a unit's usage after its reservation (if any) was released. Returns the money charged, the
-- usage parts (see usage_parts; none when nothing was used) and what bonus money paid of the
-- charge. Usage is always charged, even beyond the grant: it happened. Without a reservation,
-- `tariff` (in force now, for the request's context) prices it, as one part.
local function charge_usage(account, tariff, reservation, unit_request, context, now_ms)
  local used, field = unit_request.used, unit_request.names.used
  if used == 0 then
    return 0, {}, 0
  end
  local rating_group = unit_request.rating_group
  if reservation == nil then
    local left = take_from_buckets(account, tariff.unit, rating_group, context.zone, used, now_ms)
    -- whether money may pay matters only for units no bucket paid (asking tests every bucket)
    local free = left > 0 and money_blocked(account, tariff.unit, rating_group, context.zone, now_ms)
    local charged = free and 0 or price_of(left, tariff.price_minor, tariff.block_size, field)
    local part = { units = used, from_buckets = used - left, charged = charged, tariff = tariff.name,
      block = tariff.block_size }
    return pay_usage(account, tariff.unit, charged, { part }, rating_group, context.zone, nil, now_ms)
  end
  local unit, after_units = reservation.unit, unit_request.used_after_tariff_change
  if reservation.throttled then
    local _, parts = usage_parts(reservation, used, 0, after_units, true, field)
    return 0, parts, 0
  end
  local left, free = used, false
  local bonus = reserved_bonus(account, reservation)
  if bonus == nil and (reservation.bucket_units > 0 or reservation.money == 0) then
    left = take_from_reserved_bucket(account, reservation, used)
    left = take_from_buckets(account, unit, rating_group, reservation.zone, left, now_ms)
    free = left > 0 and money_blocked(account, unit, rating_group, reservation.zone, now_ms)
  end
  local cost, parts = usage_parts(reservation, used, used - left, after_units, free, field)
  return pay_usage(account, unit, cost, parts, rating_group, reservation.zone, bonus, now_ms)
end

-- Units the parts paid for beyond what they used: the rest of the last whole block charged, which the
-- session's next report of the rating group uses first (lib/session.lua, prepaid).
local function paid_beyond_use(parts)
  local last = parts[#parts]
  if last == nil or last.charged == 0 then
    return 0
  end
  local rated = last.units - last.from_buckets
  return ceil_divide(rated, last.block) * last.block - rated
end

local function new_reservation(pricing, context, unit, now_ms)
  local tariff, after = pricing.tariff, pricing.after
  return {
    money = 0, bucket_units = 0, bucket_id = '', price_minor = tariff.price_minor, block_size = tariff.block_size,
    unit = unit, validity_time_s = ceil_divide(pricing.deadline_ms - now_ms, 1000), deadline_ms = pricing.deadline_ms,
    throttled = false, tariff = tariff.name, change_ms = pricing.change_ms,
    price_after = after and after.price_minor or 0, block_after = after and after.block_size or 1,
    tariff_after = after and after.name or '', zone = context.zone, destination = context.destination,
  }
end

-- A grant from a bucket (units, or bonus money) is valid until the bucket expires at the latest.
local function hold_in_bucket(account, bucket, reservation, amount, now_ms)
  bucket.reserved = bucket.reserved + amount
  account.dirty_buckets[bucket.id] = true
  reservation.bucket_id, reservation.bucket_units = bucket.id, amount
  if bucket.expires_at_ms > 0 and bucket.expires_at_ms < reservation.deadline_ms then
    reservation.deadline_ms = bucket.expires_at_ms
    reservation.validity_time_s = math.max(1, ceil_divide(bucket.expires_at_ms - now_ms, 1000))
    if reservation.change_ms >= reservation.deadline_ms then
      reservation.change_ms, reservation.price_after, reservation.block_after, reservation.tariff_after = 0, 0, 1, ''
    end
  end
end

local function reserve_from_bucket(account, bucket, reservation, requested, now_ms)
  local granted = math.min(requested, bucket.remaining - bucket.reserved)
  hold_in_bucket(account, bucket, reservation, granted, now_ms)
  return granted
end

local function throttled_grant(reservation, requested)
  reservation.throttled = true
  return CODE.SUCCESS, requested, false, true, reservation
end

-- Money blocks of a tariff a grant may reserve: what available and `bonus` (free bonus money
-- serving it) pay, available for data no more than the plan's monthly overage spend cap has left
-- (nil: the cap is reached and bonus cannot pay a block either: throttle instead).
local function affordable_blocks(account, plan, tariff, unit, bonus, now_ms)
  local main = math.max(available_money(account), 0)
  if unit == UNIT.BYTES then
    local cap_left = data_overage_left(account, plan, now_ms)
    if cap_left ~= nil then
      -- the cap bounds the subscriber's own spend: main money, not bonus money
      cap_left = math.max(cap_left, 0)
      if floor_divide(cap_left, tariff.price_minor) == 0 and bonus < tariff.price_minor then
        return nil
      end
      main = math.min(main, cap_left)
    end
  end
  return floor_divide(main + bonus, tariff.price_minor)
end

-- Units a money grant gives and the money it reserves: what pays for the dearer side of a tariff
-- time change. granted is nil when the data overage cap is reached (throttle instead), `requested`
-- when every side is free.
local function money_grant(account, plan, pricing, unit, requested, bonus, now_ms)
  local granted, money, dearest_price = nil, 0, 0
  local sides = pricing.after and 2 or 1 -- the tariff, and the one after its time change if any
  for side = 1, sides do
    local tariff = side == 1 and pricing.tariff or pricing.after
    if tariff.price_minor > 0 then
      local affordable = affordable_blocks(account, plan, tariff, unit, bonus, now_ms)
      if affordable == nil then
        return nil, 0, 0
      end
      local blocks = math.min(math.max(1, floor_divide(requested, tariff.block_size)), affordable)
      granted = math.min(granted or blocks * tariff.block_size, blocks * tariff.block_size)
      dearest_price = math.max(dearest_price, tariff.price_minor)
    end
  end
  if granted == nil then
    return requested, 0, 0
  end
  for side = 1, sides do
    local tariff = side == 1 and pricing.tariff or pricing.after
    money = math.max(money, price_of(granted, tariff.price_minor, tariff.block_size, 'requested'))
  end
  return granted, money, dearest_price
end

-- Reserves the next slice for one rating group, priced by `pricing` (lib/tariffs.lua). Returns the
-- grant's result, the units granted, whether they are final, whether throttled, and the reservation
-- (nil when nothing was granted): values, not a table of them made for each grant.
local function reserve_units(account, plan, pricing, context, unit_request, unit, requested, now_ms)
  local rating_group = unit_request.rating_group
  local reservation = new_reservation(pricing, context, unit, now_ms)
  local bucket, blocking_policy = select_bucket(account, unit, rating_group, context.zone, now_ms)
  if bucket then
    local granted = reserve_from_bucket(account, bucket, reservation, requested, now_ms)
    -- final only when a CAP bucket forbids money and no bucket is left to grant from after this one
    local final = blocking_policy == POLICY.CAP
      and select_bucket(account, unit, rating_group, context.zone, now_ms) == nil
    return CODE.SUCCESS, granted, final, false, reservation
  end
  if blocking_policy == POLICY.THROTTLE then
    return throttled_grant(reservation, requested)
  end
  if blocking_policy == POLICY.CAP then
    return CODE.CREDIT_LIMIT_REACHED, 0, true, false, nil
  end
  local bonus = first_bonus(account, rating_group, context.zone, now_ms) -- one per reservation
  local bonus_free = bonus and bonus.remaining - bonus.reserved or 0
  local granted, money, dearest_price = money_grant(account, plan, pricing, unit, requested, bonus_free, now_ms)
  if granted == nil then
    return throttled_grant(reservation, requested)
  end
  if granted == 0 then
    return CODE.CREDIT_LIMIT_REACHED, 0, true, false, nil
  end
  local from_bonus = math.min(money, bonus_free)
  if from_bonus > 0 then
    hold_in_bucket(account, bonus, reservation, from_bonus, now_ms)
  end
  reservation.money = money - from_bonus
  account.reserved = account.reserved + reservation.money
  -- Only a reservation that holds main money must fit in available; one that holds none (a free
  -- tariff, bonus money) leaves a line in debt exactly as far in debt as it was.
  assert(reservation.money == 0 or available_money(account) >= 0, 'reservation makes available negative')
  local left = math.max(available_money(account), 0) + free_bonus(account, rating_group, context.zone, now_ms)
  local final = dearest_price > 0 and left < dearest_price
  return CODE.SUCCESS, granted, final, false, reservation
end

-- EVENT: debits `units` at once from buckets, then bonus money, then main money. Returns the grant
-- fields, the money charged, the units taken from buckets and what bonus money paid; a result other
-- than SUCCESS means the caller must discard every change of the request.
local function debit_event(account, tariff, unit_request, zone, units, now_ms)
  local rating_group = unit_request.rating_group
  local left = take_from_buckets(account, tariff.unit, rating_group, zone, units, now_ms)
  local cost = price_of(left, tariff.price_minor, tariff.block_size, unit_request.names.requested)
  if cost == 0 then
    return { result = CODE.SUCCESS, granted = units }, 0, units - left, 0
  end
  local affordable = math.max(available_money(account), 0) + free_bonus(account, rating_group, zone, now_ms)
  if cost > affordable then
    return { result = CODE.CREDIT_LIMIT_REACHED, granted = 0, final = true }, 0, 0, 0
  end
  return { result = CODE.SUCCESS, granted = units }, cost, units - left,
    pay_from_bonus(account, cost, rating_group, zone, nil, now_ms)
end

local function service_allowed(account, tariff)
  if account.status == STATUS.ACTIVE then
    return true
  end
  if account.status == STATUS.ONE_WAY_SUSPENDED then
    return not tariff.originating or tariff.always_allowed
  end
  return false
end
