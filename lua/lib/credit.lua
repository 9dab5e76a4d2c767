--[=[
Credit: the monthly data overage spend cap (per billing cycle, lib/calendar.lua) and the credit limit
(tiers, operator overrides, changes).
uses: numbers, calendar, account
]=]

-- Money spent on data beyond bundles in the billing cycle of now_ms (the account keeps the
-- cycle it counted in, overage_cycle, and the sum, overage_spent_minor).
local function data_overage_spent(account, now_ms)
  if account.overage_cycle == billing_cycle_of(now_ms, account.billing_cycle_day) then
    return account.overage_spent_minor
  end
  return 0
end

-- Money left under the plan's monthly data overage spend cap in the current billing cycle (nil: the
-- plan has no cap). Data paid from money counts; when nothing is left, data is throttled instead.
local function data_overage_left(account, plan, now_ms)
  if plan.monthly_data_overage_cap_minor == 0 then
    return nil
  end
  return plan.monthly_data_overage_cap_minor - data_overage_spent(account, now_ms)
end

local function count_data_overage(account, plan, cost, now_ms)
  local cycle = billing_cycle_of(now_ms, account.billing_cycle_day)
  if account.overage_cycle ~= cycle then
    account.overage_cycle, account.overage_spent_minor = cycle, 0
  end
  local cap = plan.monthly_data_overage_cap_minor
  if cap > 0 and account.overage_spent_minor < cap and account.overage_spent_minor + cost >= cap then
    queue_event(account, now_ms, 'data_overage_cap_reached', format_integer(cap))
  end
  account.overage_spent_minor = account.overage_spent_minor + cost
end

-- A credit limit change (tier recompute, operator override) is a ledger entry of amount 0 and an
-- event; it can exhaust credit (one-way) or restore it (resume), like a balance change.
local function change_credit_limit(account, now_ms, credit_limit, reference)
  if credit_limit == account.credit_limit then
    return
  end
  local before = account.credit_limit
  account.credit_limit = credit_limit
  queue_ledger(account, now_ms, 'credit_limit', 0,
    format_integer(before) .. ' -> ' .. format_integer(credit_limit) .. ' ' .. reference)
  queue_event(account, now_ms, 'credit_limit_changed', format_integer(credit_limit) .. ' ' .. reference)
  apply_credit_exhaustion(account, now_ms, reference)
  apply_credit_recovery(account, now_ms, reference, 'CREDIT_LIMIT')
end

-- The credit limit of the account's tier (the lowest tier's for an unknown name); without tiers,
-- the plan's credit_limit_minor.
local function tier_credit_limit(account)
  local plan = CONFIG.plans[account.plan]
  if plan == nil then
    return account.credit_limit
  end
  for _, tier in ipairs(plan.credit_tiers) do
    if tier.name == account.tier then
      return tier.credit_limit_minor
    end
  end
  local lowest = plan.credit_tiers[1]
  return lowest and lowest.credit_limit_minor or plan.credit_limit_minor
end
