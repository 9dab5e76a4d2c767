--[=[
Bundle usage events: bundle_nearly_used when a bucket's consumption crosses the plan's
bundle_warning_percent, bundle_used_up when it reaches zero; queued by save_account (lib/save.lua).
uses: codes, numbers, account
]=]

-- Remaining units at which a bucket of `amount` has `percent` used.
local function warning_remaining(amount, percent)
  return floor_divide(amount, 100) * (100 - percent) + floor_divide((amount % 100) * (100 - percent), 100)
end

-- Buckets this call consumed from (units buckets only), in consumption order. Only they can cross a
-- threshold, and they are seldom more than one: sorting every bucket of the account for them cost a
-- call some 9 000 instructions (an account with three bundles, loadtest.redis_instructions --bundles).
local function consumed_buckets(account)
  local consumed = {}
  for bucket_id in pairs(account.dirty_buckets) do
    local bucket = account.buckets[bucket_id]
    if bucket and bucket.remaining < bucket.loaded_remaining and bucket.unit ~= UNIT.MONEY then
      consumed[#consumed + 1] = bucket
    end
  end
  if #consumed > 1 then
    table.sort(consumed, consumed_before)
  end
  return consumed
end

-- bundle_nearly_used when consumption crosses the plan's warning percentage, bundle_used_up at zero.
local function queue_bucket_usage_events(account, now_ms)
  if next(account.dirty_buckets) == nil then
    return
  end
  local plan = CONFIG.plans[account.plan]
  local percent = plan and plan.bundle_warning_percent or 80
  for _, bucket in ipairs(consumed_buckets(account)) do
    local warning = warning_remaining(bucket.amount, percent)
    if bucket.remaining == 0 then
      queue_event(account, now_ms, 'bundle_used_up', bucket.id)
    elseif bucket.loaded_remaining > warning and bucket.remaining <= warning then
      queue_event(account, now_ms, 'bundle_nearly_used', bucket.id .. ' ' .. percent)
    end
  end
end
