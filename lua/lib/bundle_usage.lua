--[=[
Bundle usage events: bundle_nearly_used when a bucket's consumption crosses the plan's
bundle_warning_percent, bundle_used_up when it reaches zero; queued by save_account (lib/save.lua).
uses: codes, numbers, account
]=]

-- Remaining units at which a bucket of `amount` has `percent` used.
local function warning_remaining(amount, percent)
  return floor_divide(amount, 100) * (100 - percent) + floor_divide((amount % 100) * (100 - percent), 100)
end

-- bundle_nearly_used when consumption crosses the plan's warning percentage, bundle_used_up at zero.
local function queue_bucket_usage_events(account, now_ms)
  if next(account.dirty_buckets) == nil then
    return
  end
  local plan = CONFIG.plans[account.plan]
  local percent = plan and plan.bundle_warning_percent or 80
  for _, bucket in ipairs(ordered_buckets(account)) do
    if account.dirty_buckets[bucket.id] and bucket.remaining < bucket.loaded_remaining and bucket.unit ~= UNIT.MONEY then
      local warning = warning_remaining(bucket.amount, percent)
      if bucket.remaining == 0 then
        queue_event(account, now_ms, 'bundle_used_up', bucket.id)
      elseif bucket.loaded_remaining > warning and bucket.remaining <= warning then
        queue_event(account, now_ms, 'bundle_nearly_used', bucket.id .. ' ' .. percent)
      end
    end
  end
end
