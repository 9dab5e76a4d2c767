--[=[
Bonus money (docs/design.md, Bonus money): buckets of unit MONEY (minor units of the account's
currency) that pay the usage of their rating groups in their zones before main money. They never pay
fees, loans, bundles or debt, and are no part of balance, available or the credit rules.
A reservation holds its bonus part in its bucket fields (bucket_id, bucket_units: money from one bonus
bucket) beside its main money: a reservation is from a units bucket or from money, never both.
A top-up grants a bonus by the plan's first topup_bonuses rule its amount reaches: bucket
'bonus:<top-up ledger seq>', and for a bonus in instalments 'bonus:<seq>:<n>' for the n-th, each
granted at the start of a billing cycle. The instalments to come are kept in the account field
bonus_instalments, entries joined by ';':
  '<bonus_id>|<instalments left>|<instalment_minor>|<validity_s>|<priority>|<rg,rg,...>|<zone,zone,...>|<next instalment number>|<due_ms>'
uses: codes, numbers, calendar, account
]=]
local INSTALMENT_PATTERN =
  '^([%w%._:%-]+)|(%d+)|(%d+)|(%d+)|(%d+)|([%d,]*)|([%w%._:%-,]+)|(%d+)|(%d+)$'

-- Bonus buckets with free money that pay for (rating group, zone) now, in consumption order.
local function serving_bonus(account, rating_group, zone, now_ms)
  local serving = {}
  if account.ordered == nil then
    account.ordered = ordered_buckets(account)
  end
  for _, bucket in ipairs(account.ordered) do
    if bucket.remaining > bucket.reserved and bucket_serves(bucket, UNIT.MONEY, rating_group, zone, now_ms) then
      serving[#serving + 1] = bucket
    end
  end
  return serving
end

-- The free bonus money serving (rating group, zone) now, all buckets together.
local function free_bonus(account, rating_group, zone, now_ms)
  local free = 0
  if not account.has_money_buckets then -- the common case: no sort, no list
    return free
  end
  for _, bucket in ipairs(serving_bonus(account, rating_group, zone, now_ms)) do
    free = free + bucket.remaining - bucket.reserved
  end
  return free
end

-- The bonus bucket a new reservation holds money of: the first serving (nil: none).
local function first_bonus(account, rating_group, zone, now_ms)
  return account.has_money_buckets and serving_bonus(account, rating_group, zone, now_ms)[1] or nil
end

-- Pays up to `cost` from bonus money: `own` first (the bonus bucket a reservation held, even if it
-- expired since the grant), then the buckets serving (rating group, zone). Returns what bonus paid.
local function pay_from_bonus(account, cost, rating_group, zone, own, now_ms)
  local paid = 0
  if not account.has_money_buckets then
    return paid
  end
  local buckets = serving_bonus(account, rating_group, zone, now_ms)
  if own then
    table.insert(buckets, 1, own)
  end
  for _, bucket in ipairs(buckets) do
    local taken = math.min(cost - paid, bucket.remaining - bucket.reserved)
    if taken > 0 then
      bucket.remaining = bucket.remaining - taken
      account.dirty_buckets[bucket.id] = true
      paid = paid + taken
    end
  end
  return paid
end

-- The bonus bucket a reservation holds money of (nil: none).
local function reserved_bonus(account, reservation)
  local bucket = reservation.bucket_units > 0 and account.buckets[reservation.bucket_id]
  return bucket and bucket.unit == UNIT.MONEY and bucket or nil
end

-- What bonus paid of a unit's cost, spread over its usage parts in order (part.bonus), for the usage
-- records.
local function spread_bonus(parts, bonus)
  for _, part in ipairs(parts) do
    part.bonus = math.min(part.charged, bonus)
    bonus = bonus - part.bonus
  end
  assert(bonus == 0, 'bonus paid more than the usage cost')
end

-- Grants one instalment as bucket `bucket_id`, or records why not (the account holds
-- max_buckets_per_account buckets). Ledger entries of amount 0: bonus money is not balance.
local function grant_bonus_bucket(account, now_ms, bucket_id, amount, rule)
  if count_keys(account.buckets) >= CONFIG.limits.max_buckets_per_account then
    queue_ledger(account, now_ms, 'bonus', 0, 'bucket ' .. bucket_id .. ' of ' .. format_integer(amount)
      .. ' not granted: the account holds max_buckets_per_account buckets')
    return
  end
  account.buckets[bucket_id] = new_bucket(bucket_id, { unit = UNIT.MONEY, amount = amount,
    expires_at_ms = now_ms + rule.validity_s * 1000, priority = rule.priority, policy = POLICY.OVERAGE,
    rating_groups = rule.rating_groups, zones = rule.zones })
  account.dirty_buckets[bucket_id] = true
  account.has_money_buckets = true
  account.ordered = nil
  queue_ledger(account, now_ms, 'bonus', 0, 'bucket ' .. bucket_id .. ' granted ' .. format_integer(amount))
  queue_event(account, now_ms, 'bonus_granted', bucket_id .. ' ' .. format_integer(amount) .. ' '
    .. format_integer(account.buckets[bucket_id].expires_at_ms))
end

local function decode_instalments(text)
  local entries = {}
  for entry in string.gmatch(text or '', '[^;]+') do
    local bonus_id, left, instalment_minor, validity_s, priority, groups, zones, number, due_ms =
      string.match(entry, INSTALMENT_PATTERN)
    assert(bonus_id, 'corrupt bonus instalment')
    entries[#entries + 1] = { bonus_id = bonus_id, left = tonumber(left), instalment_minor = tonumber(instalment_minor),
      validity_s = tonumber(validity_s), priority = tonumber(priority), rating_groups = groups, zones = zones,
      number = tonumber(number), due_ms = tonumber(due_ms) }
  end
  return entries
end

local function encode_instalments(entries)
  local texts = {}
  for _, e in ipairs(entries) do
    texts[#texts + 1] = table.concat({ e.bonus_id, e.left, format_integer(e.instalment_minor), e.validity_s,
      e.priority, e.rating_groups, e.zones, e.number, format_integer(e.due_ms) }, '|')
  end
  return table.concat(texts, ';')
end

-- The start of the billing cycle after the one `ms` falls in.
local function next_cycle_start_ms(account, ms)
  return billing_cycle_end_ms(billing_cycle_of(ms, account.billing_cycle_day), account.billing_cycle_day)
end

-- Keeps the instalments of a bonus that are to come (at most max_buckets_per_account bonuses wait).
local function schedule_instalments(account, now_ms, bonus_id, rule, instalment_minor)
  local entries = decode_instalments(account.bonus_instalments)
  if #entries >= CONFIG.limits.max_buckets_per_account then
    queue_ledger(account, now_ms, 'bonus', 0, 'instalments of ' .. bonus_id
      .. ' not scheduled: the account awaits max_buckets_per_account bonuses in instalments')
    return
  end
  entries[#entries + 1] = { bonus_id = bonus_id, left = rule.instalments - 1, instalment_minor = instalment_minor,
    validity_s = rule.validity_s, priority = rule.priority, rating_groups = rule.rating_groups, zones = rule.zones,
    number = 2, due_ms = next_cycle_start_ms(account, now_ms) }
  account.bonus_instalments = encode_instalments(entries)
end

-- The top-up bonus of the plan's first rule that `amount` reaches (none: nothing happens). seq is
-- the top-up's ledger seq, which names the bonus.
local function grant_topup_bonus(account, now_ms, amount, seq)
  local plan = CONFIG.plans[account.plan]
  for _, rule in ipairs(plan and plan.topup_bonuses or {}) do
    if amount >= rule.min_amount_minor then
      -- amount * percent may pass 2^53: split it; a bonus of up to 1 000 % stays one amount at most
      local total = rule.bonus_minor > 0 and rule.bonus_minor
        or floor_divide(amount, 100) * rule.bonus_percent + floor_divide((amount % 100) * rule.bonus_percent, 100)
      total = math.min(total, CONFIG.limits.max_amount_minor)
      local instalment_minor = floor_divide(total, rule.instalments)
      if instalment_minor == 0 then
        return
      end
      local bonus_id = 'bonus:' .. format_integer(seq)
      -- the first instalment takes what does not divide evenly
      grant_bonus_bucket(account, now_ms, bonus_id, total - instalment_minor * (rule.instalments - 1), rule)
      if rule.instalments > 1 then
        schedule_instalments(account, now_ms, bonus_id, rule, instalment_minor)
      end
      return
    end
  end
end

-- When the next instalment falls due (nil: none).
local function next_instalment_ms(account)
  local due = nil
  for _, entry in ipairs(decode_instalments(account.bonus_instalments)) do
    due = (due == nil or entry.due_ms < due) and entry.due_ms or due
  end
  return due
end

-- Grants the instalments due by now_ms, each dated when it fell due (a long silence grants every
-- one missed, each valid from its own date).
local function apply_bonus_instalments(account, now_ms)
  if (account.bonus_instalments or '') == '' then
    return
  end
  local kept = {}
  for _, entry in ipairs(decode_instalments(account.bonus_instalments)) do
    while entry.left > 0 and entry.due_ms <= now_ms do
      grant_bonus_bucket(account, entry.due_ms, entry.bonus_id .. ':' .. entry.number, entry.instalment_minor, entry)
      entry.left, entry.number = entry.left - 1, entry.number + 1
      entry.due_ms = next_cycle_start_ms(account, entry.due_ms)
    end
    if entry.left > 0 then
      kept[#kept + 1] = entry
    end
  end
  account.bonus_instalments = encode_instalments(kept)
end
