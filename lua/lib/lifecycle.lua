--[=[
What happens to an account with time, applied by apply_due_changes at the start of every writing
call with the server's now_ms (lazily), and by advance_account for the accounts the partition's due
index lists (the sweeper):
- plan changes of CONFIG.plan_changes whose effective date has come, for the accounts of their
  cohort and rollout percentage, each at most once per account;
- the suspension ladder's time-driven steps (credit-caused suspensions still in debt);
- reminders that such a step is coming, plan.suspension_reminder_days before it;
- bonus instalments (lib/bonus.lua) whose billing cycle has come;
- bucket expiry (a bucket still reserved by a session waits for the session to report).
The due index (zset cd:{p:<n>}:due, account id by ms) holds each account's next_due_ms; save_account
keeps it current.
uses: codes, numbers, calendar, account, bonus
]=]

local function in_debt(account)
  return account.balance + account.credit_limit <= 0
end

-- When the suspension ladder's next time-driven step is due (nil: none). Only credit-caused
-- suspensions move on by themselves; ADMIN and FRAUD wait for an operator.
local function ladder_due_ms(account)
  local plan = CONFIG.plans[account.plan]
  if plan == nil or account.status_reason ~= 'CREDIT' then
    return nil
  end
  if account.status == STATUS.ONE_WAY_SUSPENDED then
    return account.status_since_ms + plan.one_way_grace_period_s * 1000
  end
  if account.status == STATUS.TWO_WAY_SUSPENDED then
    return account.status_since_ms + plan.two_way_grace_period_s * 1000
  end
  return nil
end

-- Applies the steps that are due at now_ms (a long silence may cross both): one-way still in debt
-- becomes two-way, with the plan's late fee; two-way becomes terminated. Each step is dated when it
-- fell due, so the next grace period counts from there.
local function apply_ladder(account, now_ms)
  for _ = 1, 2 do
    local due_ms = ladder_due_ms(account)
    if due_ms == nil or now_ms < due_ms or not in_debt(account) then
      return
    end
    if account.status == STATUS.ONE_WAY_SUSPENDED then
      set_status(account, due_ms, STATUS.TWO_WAY_SUSPENDED, 'CREDIT', 'grace period over')
      local fee = CONFIG.plans[account.plan].late_fee_minor
      if fee > 0 then
        queue_ledger(account, due_ms, 'fee', -fee, 'late fee')
      end
    else
      set_status(account, due_ms, STATUS.TERMINATED, 'CREDIT', 'grace period over')
    end
  end
end

local NEXT_LADDER_STATUS = {
  [STATUS.ONE_WAY_SUSPENDED] = STATUS.TWO_WAY_SUSPENDED,
  [STATUS.TWO_WAY_SUSPENDED] = STATUS.TERMINATED,
}

-- The next reminder of a coming ladder step: {due ms, days before the step} or nil.
local function next_reminder(account)
  local step_ms = ladder_due_ms(account)
  if step_ms == nil or not in_debt(account) then
    return nil
  end
  local days = CONFIG.plans[account.plan].suspension_reminder_days[account.reminders_sent + 1]
  if days == nil then
    return nil
  end
  return { step_ms - days * DAY_MS, days, step_ms }
end

-- One suspension_coming event for the latest reminder that fell due (a long silence sends one, not
-- all): detail '<next status> <step due ms> <days>'.
local function apply_reminders(account, now_ms)
  local reminder, sent = next_reminder(account), nil
  while reminder ~= nil and reminder[1] <= now_ms and now_ms < reminder[3] do
    account.reminders_sent = account.reminders_sent + 1
    sent = reminder
    reminder = next_reminder(account)
  end
  if sent then
    queue_event(account, now_ms, 'suspension_coming',
      STATUS_NAME[NEXT_LADDER_STATUS[account.status]] .. ' ' .. format_integer(sent[3]) .. ' ' .. sent[2])
  end
end

local function remove_bucket(account, bucket)
  account.buckets[bucket.id] = nil
  account.dirty_buckets[bucket.id] = nil
  account.removed_buckets[#account.removed_buckets + 1] = bucket.id
  account.ordered = nil
end

-- A bonus bucket spent to nothing and held by no session serves nothing more: it leaves at once (no
-- ledger entry: it moved no money; its use is in the usage records), so that a subscriber who tops up
-- often does not fill max_buckets_per_account with empty bonuses.
local function drop_spent_bonus(account)
  if not account.has_money_buckets then
    return
  end
  for _, bucket in pairs(account.buckets) do
    if bucket.unit == UNIT.MONEY and bucket.remaining == 0 and bucket.reserved == 0 then
      remove_bucket(account, bucket)
    end
  end
end

-- Expired buckets leave with a ledger entry (amount 0: units, not money) and a bundle_expired event,
-- dated when they expired. One still reserved waits: rating no longer grants from it, and the
-- session's report consumes what it was granted.
local function bucket_expired(bucket, now_ms)
  return bucket.expires_at_ms > 0 and bucket.expires_at_ms <= now_ms and bucket.reserved == 0
end

-- The bundle a bucket was bought from ('<bundle_id>.<seq>'; nil for a bucket granted otherwise), the
-- id without its rollover suffix, and how many times it has rolled over ('<...>.r<n>').
local function rollover_source(bucket_id)
  local base, generation = string.match(bucket_id, '^(.*)%.r(%d+)$')
  base = base or bucket_id
  return string.match(base, '^(.*)%.%d+$'), base, tonumber(generation or '0')
end

-- Rollover: the bundle's share of what is left becomes a bucket of the same kind that expires at the
-- end of the next billing cycle, with a ledger entry (amount 0: units) and a bundle_rolled_over event.
local function roll_over(account, bucket)
  local plan = CONFIG.plans[account.plan]
  local bundle_id, base, generation = rollover_source(bucket.id)
  local bundle = plan and bundle_id and plan.bundles[bundle_id]
  if not bundle or bundle.rollover_percent == 0 or generation >= bundle.rollover_max_cycles then
    return
  end
  local percent = bundle.rollover_percent
  -- remaining * percent may pass 2^53: split it.
  local units = floor_divide(bucket.remaining, 100) * percent + floor_divide((bucket.remaining % 100) * percent, 100)
  local new_id = base .. '.r' .. (generation + 1)
  if units == 0 or #new_id > 64 then
    return
  end
  -- An expiry on a cycle boundary ends the cycle before it: the rollover lasts one cycle, not two.
  local cycle = billing_cycle_of(bucket.expires_at_ms - 1, account.billing_cycle_day)
  account.buckets[new_id] = new_bucket(new_id, { unit = bucket.unit, amount = units,
    expires_at_ms = billing_cycle_end_ms(cycle + 1, account.billing_cycle_day), priority = bucket.priority,
    policy = bucket.policy, rating_groups = bucket.groups_text, zones = bucket.zones_text })
  account.dirty_buckets[new_id] = true
  account.ordered = nil
  queue_ledger(account, bucket.expires_at_ms, 'rollover', 0,
    'bucket ' .. bucket.id .. ' rolled ' .. format_integer(units) .. ' over into ' .. new_id)
  queue_event(account, bucket.expires_at_ms, 'bundle_rolled_over', new_id .. ' ' .. format_integer(units))
end

local function expire_buckets_once(account, now_ms)
  local any = false
  for _, bucket in pairs(account.buckets) do
    any = any or bucket_expired(bucket, now_ms)
  end
  if not any then  -- the common case, on every save: no sort
    return false
  end
  for _, bucket in ipairs(ordered_buckets(account)) do
    if bucket_expired(bucket, now_ms) then
      remove_bucket(account, bucket)
      local left = format_integer(bucket.remaining)
      queue_ledger(account, bucket.expires_at_ms, 'expiry', 0, 'bucket ' .. bucket.id .. ' expired with ' .. left .. ' left')
      local kind = bucket.unit == UNIT.MONEY and 'bonus_expired' or 'bundle_expired'
      queue_event(account, bucket.expires_at_ms, kind, bucket.id .. ' ' .. left)
      roll_over(account, bucket)
    end
  end
  return true
end

-- Again while a rolled-over bucket has expired too (an account untouched for cycles); each pass
-- raises a rollover's generation, which rollover_max_cycles (at most 12) bounds.
local function expire_buckets(account, now_ms)
  for _ = 1, 14 do
    if not expire_buckets_once(account, now_ms) then
      return
    end
  end
end

-- Stable per (change, account): the rollout takes the same accounts first as its percentage grows.
local function in_rollout(change, account_id)
  if change.rollout_percent >= 100 then
    return true
  end
  local slot = tonumber(string.sub(redis.sha1hex(change.id .. ' ' .. account_id), 1, 8), 16) % 100
  return slot < change.rollout_percent
end

local function in_cohort(change, account)
  return (change.from_plans == nil or change.from_plans[account.plan] == true)
    and (change.tiers == nil or change.tiers[account.tier] == true)
    and (change.accounts == nil or change.accounts[account.account_id] == true)
end

local function apply_plan_changes(account, now_ms)
  for _, change in ipairs(CONFIG.plan_changes) do
    local target = CONFIG.plans[change.to_plan]
    if now_ms >= change.effective_at_ms and account.plan ~= change.to_plan
        and not string.find(',' .. account.plan_changes_applied .. ',', ',' .. change.id .. ',', 1, true)
        and target.currency == account.currency and in_cohort(change, account)
        and in_rollout(change, account.account_id) then
      local reference = 'change ' .. change.id .. ': ' .. account.plan .. ' -> ' .. change.to_plan
      account.plan = change.to_plan
      account.plan_changes_applied = account.plan_changes_applied == '' and change.id
        or account.plan_changes_applied .. ',' .. change.id
      queue_ledger(account, now_ms, 'plan', 0, reference)
      queue_event(account, now_ms, 'plan_changed', change.to_plan .. ' ' .. change.id)
    end
  end
end

-- When a group member wants a refill (lib/group.lua; nil: it does not): its available money is below
-- its group's refill amount (with its plan's group_money_first: what it holds of the group's money
-- is); tried again group_refill_retry_s after the last try.
local function group_refill_due_ms(account)
  if (account.group_id or '') == '' or account.status == STATUS.TERMINATED then
    return nil
  end
  local plan = CONFIG.plans[account.plan]
  local left = (plan and plan.group_money_first) and account.group_holding or available_money(account)
  if left >= account.group_refill_minor then
    return nil
  end
  return account.group_refill_tried_ms + CONFIG.limits.group_refill_retry_s * 1000
end

-- The earlier of a due time and a candidate (either may be nil).
local function earlier_ms(due_ms, candidate_ms)
  if candidate_ms ~= nil and (due_ms == nil or candidate_ms < due_ms) then
    return candidate_ms
  end
  return due_ms
end

-- The earliest time something above is due for the account (nil: nothing). It runs twice a call
-- (the due index as loaded, and as saved), so what most accounts lack (debt, buckets, instalments, a
-- group) costs a test, not a call, and no closure is made: some 3 000 instructions a call less
-- (loadtest.redis_instructions).
local function next_due_ms(account)
  local due = nil
  if in_debt(account) then
    local reminder = next_reminder(account)
    due = earlier_ms(ladder_due_ms(account), reminder and reminder[1])
  end
  for _, bucket in pairs(account.buckets) do
    if bucket.expires_at_ms > 0 and bucket.reserved == 0 then
      due = earlier_ms(due, bucket.expires_at_ms)
    end
  end
  if (account.bonus_instalments or '') ~= '' then
    due = earlier_ms(due, next_instalment_ms(account))
  end
  if (account.group_id or '') ~= '' then
    due = earlier_ms(due, group_refill_due_ms(account))
  end
  return due
end

-- Each step is called only when the account holds what it acts on: at the start of every call, the
-- calls for an account with none of it (most: no debt, buckets or instalments, no plan change
-- configured) cost some 6 000 instructions, and the save's bucket steps 2 000 more
-- (loadtest.redis_instructions).
local function apply_due_changes(account, now_ms)
  account.now_ms = now_ms
  account.indexed_due_ms = next_due_ms(account) or 0
  if CONFIG.plan_changes[1] ~= nil then
    apply_plan_changes(account, now_ms)
  end
  if in_debt(account) then -- the ladder's steps and their reminders move only a line in debt
    apply_ladder(account, now_ms)
    apply_reminders(account, now_ms)
  end
  if (account.bonus_instalments or '') ~= '' then
    apply_bonus_instalments(account, now_ms)
  end
  if next(account.buckets) ~= nil then
    expire_buckets(account, now_ms)
  end
end

-- The start of a money call keyed by an idempotency record (top_up, adjust): the account, its due
-- changes applied, and the ledger seq of a retransmission (nil for a new key); refuses a key used
-- with another payload, and, for a new key, a terminated account.
local function load_for_keyed_call(keys, request)
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  apply_due_changes(account, request.now_ms)
  local seq = applied_seq(keys.record, request.fingerprint)
  if seq == nil then
    refuse_terminated(account)
  end
  return account, seq
end
