--[=[
recompute_tier — puts one account in the credit tier its average monthly top-up earns: the sum of
the top-ups in its ledger over the last plan.credit_tier_months * 30 days, divided by
credit_tier_months (a young account averages over the whole window too, so credit is earned, not
assumed). The tier's credit limit applies unless an operator set one (credit_limit_override). Run
in batches by `creditd tiers recompute`; a plan without tiers leaves the account as it is.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list (read: the top-ups)
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] actor       the caller's identity, recorded in the ledger
Returns {code, message, '{"tier":..,"credit_limit":..,"average_topup_minor":..,"changed":0|1,
  "window_trimmed":0|1}'}: window_trimmed = ledger retention trimmed entries of the window (the
  average is then too low; raise limits.max_ledger_entries).
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

-- Sum of the top-ups dated at or after since_ms, and whether retention trimmed part of that window.
local function top_ups_since(ledger_key, account, since_ms)
  local total, oldest_kept_ms = 0, nil
  for _, entry in ipairs(redis.call('LRANGE', ledger_key, 0, -1)) do
    local time_ms, kind, amount = string.match(entry, '^%d+|(%d+)|([%w_]+)|(%-?%d+)|')
    assert(time_ms, 'corrupt ledger entry')
    time_ms = tonumber(time_ms)
    oldest_kept_ms = oldest_kept_ms or time_ms
    if kind == 'topup' and time_ms >= since_ms then
      total = total + tonumber(amount)
    end
  end
  local trimmed = account.ledger_first_seq > 1 and oldest_kept_ms ~= nil and oldest_kept_ms > since_ms
  return total, trimmed
end

local function earned_tier(plan, average)
  local earned = nil
  for _, tier in ipairs(plan.credit_tiers) do
    if average >= tier.min_average_topup_minor then
      earned = tier
    end
  end
  return earned
end

local function recompute_tier(raw_keys, args)
  local keys = named_keys('recompute_tier', raw_keys)
  local checked, outcome = run_checked(check_account_call, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, now_ms = outcome.account, outcome.request.now_ms
  apply_due_changes(account, now_ms)
  local plan = CONFIG.plans[account.plan]
  local before_tier, before_limit = account.tier, account.credit_limit
  local average, trimmed = 0, false
  if plan ~= nil and #plan.credit_tiers > 0 and account.status ~= STATUS.TERMINATED then
    local months = plan.credit_tier_months
    local total
    total, trimmed = top_ups_since(keys.ledger, account, now_ms - months * 30 * DAY_MS)
    average = floor_divide(total, months)
    local tier = earned_tier(plan, average)
    if tier.name ~= account.tier then
      queue_event(account, now_ms, 'tier_changed', tier.name .. ' ' .. format_integer(average))
      account.tier = tier.name
    end
    if account.credit_limit_override ~= '1' then
      change_credit_limit(account, now_ms, tier.credit_limit_minor, 'tier ' .. tier.name)
    end
  end
  if account_changed(account) then
    save_account(account, keys)
  end
  local changed = (before_tier ~= account.tier or before_limit ~= account.credit_limit) and 1 or 0
  return reply(CODE.SUCCESS, '', '{"tier":' .. json_string(account.tier) .. ',"credit_limit":'
    .. format_integer(account.credit_limit) .. ',"average_topup_minor":' .. format_integer(average)
    .. ',"changed":' .. changed .. ',"window_trimmed":' .. (trimmed and 1 or 0) .. '}')
end

redis.register_function('recompute_tier', recompute_tier)
