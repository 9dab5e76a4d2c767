--[=[
Rating: which source pays for a rating group's units, what a grant may be, what usage costs.

Consumption order (docs/design.md): serving buckets by priority, then earliest expiry; then main money at
the tariff price, unless a CAP or THROTTLE data bucket for the group forbids overage.

A reservation is what one session holds for one rating group, stored in the session hash as
  reservation:<rating_group> =
    '<money>|<bucket_units>|<bucket_id>|<price_minor>|<block_size>|<unit>|<validity_time_s>|<deadline_ms>|<throttled>'
It keeps the price it was granted at, so usage is rated at that price even after a price change.
uses: codes, numbers, account, credit
]=]
local RESERVATION_PREFIX = 'reservation:'
local RESERVATION_PATTERN = '^(%d+)|(%d+)|([%w%._:%-]*)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|([01])$'

local function decode_reservation(text)
  local money, bucket_units, bucket_id, price_minor, block_size, unit, validity_time_s, deadline_ms, throttled =
    string.match(text, RESERVATION_PATTERN)
  assert(money, 'corrupt reservation')
  return {
    money = tonumber(money), bucket_units = tonumber(bucket_units), bucket_id = bucket_id,
    price_minor = tonumber(price_minor), block_size = tonumber(block_size), unit = tonumber(unit),
    validity_time_s = tonumber(validity_time_s), deadline_ms = tonumber(deadline_ms), throttled = throttled == '1',
  }
end

local function encode_reservation(reservation)
  return table.concat({ format_integer(reservation.money), format_integer(reservation.bucket_units),
    reservation.bucket_id, format_integer(reservation.price_minor), format_integer(reservation.block_size),
    reservation.unit, reservation.validity_time_s, format_integer(reservation.deadline_ms),
    reservation.throttled and '1' or '0' }, '|')
end

local function bucket_serves(bucket, unit, rating_group, now_ms)
  return bucket.unit == unit
    and (not bucket.has_groups or bucket.rating_groups[rating_group] == true)
    and (bucket.expires_at_ms == 0 or bucket.expires_at_ms > now_ms)
end

-- The first serving bucket with free units, and the CAP/THROTTLE policy of serving data buckets that
-- forbids falling through to money (nil when overage is allowed).
local function select_bucket(account, unit, rating_group, now_ms)
  local chosen, blocking_policy = nil, nil
  if account.ordered == nil then
    account.ordered = ordered_buckets(account)
  end
  for _, bucket in ipairs(account.ordered) do
    if bucket_serves(bucket, unit, rating_group, now_ms) then
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
local function take_from_buckets(account, unit, rating_group, units, now_ms)
  while units > 0 do
    local bucket = select_bucket(account, unit, rating_group, now_ms)
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

local function rate_money_usage(account, unit, units, price_minor, block_size, now_ms, field)
  local cost = price_of(units, price_minor, block_size, field)
  if cost > 0 and unit == UNIT.BYTES then
    count_data_overage(account, CONFIG.plans[account.plan], cost, now_ms)
  end
  return cost
end

-- Rates `used` units of a rating group after its reservation (if any) was released; returns the money
-- charged. Usage is always charged, even beyond the grant: it happened.
local function charge_usage(account, tariff, reservation, rating_group, used, now_ms, field)
  if used == 0 or (reservation and reservation.throttled) then
    return 0
  end
  local unit = reservation and reservation.unit or tariff.unit
  if reservation and reservation.bucket_units == 0 and reservation.money > 0 then
    return rate_money_usage(account, unit, used, reservation.price_minor, reservation.block_size, now_ms, field)
  end
  local left = reservation and take_from_reserved_bucket(account, reservation, used) or used
  left = take_from_buckets(account, unit, rating_group, left, now_ms)
  local _, blocking_policy = select_bucket(account, unit, rating_group, now_ms)
  if left == 0 or blocking_policy ~= nil then
    return 0
  end
  local price_minor = reservation and reservation.price_minor or tariff.price_minor
  local block_size = reservation and reservation.block_size or tariff.block_size
  return rate_money_usage(account, unit, left, price_minor, block_size, now_ms, field)
end

local function new_reservation(tariff, now_ms)
  return {
    money = 0, bucket_units = 0, bucket_id = '', price_minor = tariff.price_minor,
    block_size = tariff.block_size, unit = tariff.unit, validity_time_s = tariff.validity_time_s,
    deadline_ms = now_ms + tariff.validity_time_s * 1000, throttled = false,
  }
end

-- A grant from a bucket is valid until the bucket expires at the latest.
local function reserve_from_bucket(account, bucket, reservation, requested, now_ms)
  local granted = math.min(requested, bucket.remaining - bucket.reserved)
  bucket.reserved = bucket.reserved + granted
  account.dirty_buckets[bucket.id] = true
  reservation.bucket_id, reservation.bucket_units = bucket.id, granted
  if bucket.expires_at_ms > 0 and bucket.expires_at_ms < reservation.deadline_ms then
    reservation.deadline_ms = bucket.expires_at_ms
    reservation.validity_time_s = math.max(1, ceil_divide(bucket.expires_at_ms - now_ms, 1000))
  end
  return granted
end

local function throttled_grant(reservation, requested)
  reservation.throttled = true
  return { result = CODE.SUCCESS, granted = requested, throttled = true }, reservation
end

-- Money blocks a grant may reserve: what available pays, and for data, what the plan's monthly
-- overage spend cap still allows (nil: the cap is reached, throttle instead).
local function affordable_blocks(account, plan, tariff, now_ms)
  local available = available_money(account)
  local blocks = available > 0 and floor_divide(available, tariff.price_minor) or 0
  if tariff.unit == UNIT.BYTES then
    local cap_left = data_overage_left(account, plan, now_ms)
    if cap_left ~= nil then
      local cap_blocks = cap_left > 0 and floor_divide(cap_left, tariff.price_minor) or 0
      if cap_blocks == 0 then
        return nil
      end
      blocks = math.min(blocks, cap_blocks)
    end
  end
  return blocks
end

-- Reserves the next slice for one rating group. Returns the grant fields and the reservation (nil
-- when nothing was granted).
local function reserve_units(account, plan, tariff, rating_group, requested, now_ms)
  local reservation = new_reservation(tariff, now_ms)
  local bucket, blocking_policy = select_bucket(account, tariff.unit, rating_group, now_ms)
  if bucket then
    local granted = reserve_from_bucket(account, bucket, reservation, requested, now_ms)
    local next_bucket = select_bucket(account, tariff.unit, rating_group, now_ms)
    local final = next_bucket == nil and blocking_policy == POLICY.CAP
    return { result = CODE.SUCCESS, granted = granted, final = final }, reservation
  end
  if blocking_policy == POLICY.THROTTLE then
    return throttled_grant(reservation, requested)
  end
  if blocking_policy == POLICY.CAP then
    return { result = CODE.CREDIT_LIMIT_REACHED, granted = 0, final = true }, nil
  end
  if tariff.price_minor == 0 then
    return { result = CODE.SUCCESS, granted = requested }, reservation
  end
  local affordable = affordable_blocks(account, plan, tariff, now_ms)
  if affordable == nil then
    return throttled_grant(reservation, requested)
  end
  local wanted_blocks = math.max(1, floor_divide(requested, tariff.block_size))
  local blocks = math.min(wanted_blocks, affordable)
  if blocks == 0 then
    return { result = CODE.CREDIT_LIMIT_REACHED, granted = 0, final = true }, nil
  end
  reservation.money = blocks * tariff.price_minor
  account.reserved = account.reserved + reservation.money
  assert(available_money(account) >= 0, 'reservation makes available negative')
  local final = available_money(account) < tariff.price_minor
  return { result = CODE.SUCCESS, granted = blocks * tariff.block_size, final = final }, reservation
end

-- EVENT: debits `units` at once from buckets then money. Returns the grant fields and the money
-- charged; a result other than SUCCESS means the caller must discard every change of the request.
local function debit_event(account, tariff, rating_group, units, now_ms, field)
  local left = take_from_buckets(account, tariff.unit, rating_group, units, now_ms)
  local cost = price_of(left, tariff.price_minor, tariff.block_size, field)
  if cost > 0 and cost > available_money(account) then
    return { result = CODE.CREDIT_LIMIT_REACHED, granted = 0, final = true }, 0
  end
  return { result = CODE.SUCCESS, granted = units }, cost
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
