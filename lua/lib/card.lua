--[=[
The subscriber card and keyed answers as JSON (integers through format_integer, strings quoted by cjson).
uses: numbers, account, bonus, lifecycle, credit
]=]
local function bucket_json(bucket)
  return '[' .. json_string(bucket.id) .. ',' .. bucket.unit .. ',' .. format_integer(bucket.remaining) .. ','
    .. format_integer(bucket.reserved) .. ',' .. json_string(bucket.groups_text) .. ','
    .. format_integer(bucket.expires_at_ms) .. ',' .. bucket.priority .. ',' .. bucket.policy .. ','
    .. format_integer(bucket.amount) .. ',' .. json_string(bucket.zones_text) .. ']'
end

-- Bonus instalments to come: [[bonus_id, instalments left, instalment_minor, next due ms], ...].
local function instalments_json(account)
  local entries = {}
  for _, e in ipairs(decode_instalments(account.bonus_instalments)) do
    entries[#entries + 1] = '[' .. json_string(e.bonus_id) .. ',' .. e.left .. ',' .. format_integer(e.instalment_minor)
      .. ',' .. format_integer(e.due_ms) .. ']'
  end
  return '[' .. table.concat(entries, ',') .. ']'
end

-- An account's notification preferences, stored in its 'preferences' field as
-- '<language>|<time_zone>|<channels>|<marketing 0/1>|<quiet start>|<quiet end>' ('' = the plan's
-- default; no field: every one the plan's).
local function encode_preferences(p)
  return table.concat({ p.language, p.time_zone, p.channels, p.marketing_opt_in, p.quiet_hours_start,
    p.quiet_hours_end }, '|')
end

-- The preferences in force, as JSON: the account's own, else its plan's defaults.
local function preferences_json(account, plan)
  local own = {}
  if account.preferences and account.preferences ~= '' then
    own.language, own.time_zone, own.channels, own.marketing_opt_in, own.quiet_hours_start, own.quiet_hours_end =
      string.match(account.preferences, '^([^|]*)|([^|]*)|([^|]*)|([01])|([^|]*)|([^|]*)$')
    assert(own.language, 'corrupt preferences')
  end
  local defaults = plan and plan.preferences or { language = 'en', time_zone = 'UTC', channels = '',
    marketing_opt_in = false, quiet_hours_start = '', quiet_hours_end = '' }
  local function pick(field)
    local value = own[field]
    return (value ~= nil and value ~= '') and value or defaults[field]
  end
  local quiet_start, quiet_end = own.quiet_hours_start, own.quiet_hours_end
  if quiet_start == nil or quiet_start == '' then
    quiet_start, quiet_end = defaults.quiet_hours_start, defaults.quiet_hours_end
  end
  local marketing = own.marketing_opt_in ~= nil and own.marketing_opt_in == '1'
    or own.marketing_opt_in == nil and defaults.marketing_opt_in
  return '{"language":' .. json_string(pick('language')) .. ',"time_zone":' .. json_string(pick('time_zone'))
    .. ',"channels":' .. json_string(pick('channels')) .. ',"marketing_opt_in":' .. (marketing and 'true' or 'false')
    .. ',"quiet_hours_start":' .. json_string(quiet_start) .. ',"quiet_hours_end":' .. json_string(quiet_end) .. '}'
end

-- The subscriber card (creditd/store/replies.py decodes it); now_ms decides which billing cycle the
-- data overage spend is of.
local function account_json(account, open_sessions, now_ms)
  local next_step = in_debt(account) and ladder_due_ms(account) or nil
  local plan = CONFIG.plans[account.plan]
  local buckets = {}
  for _, bucket in ipairs(ordered_buckets(account)) do
    buckets[#buckets + 1] = bucket_json(bucket)
  end
  return '{"account_id":' .. json_string(account.account_id)
    .. ',"plan":' .. json_string(account.plan)
    .. ',"currency":' .. json_string(account.currency)
    .. ',"status":' .. format_integer(account.status)
    .. ',"status_reason":' .. json_string(account.status_reason)
    .. ',"status_since_ms":' .. format_integer(account.status_since_ms)
    .. ',"balance":' .. format_integer(account.balance)
    .. ',"reserved":' .. format_integer(account.reserved)
    .. ',"credit_limit":' .. format_integer(account.credit_limit)
    .. ',"tier":' .. json_string(account.tier)
    .. ',"created_at_ms":' .. format_integer(stored_number(account.created_at_ms))
    .. ',"ledger_seq":' .. format_integer(account.ledger_seq)
    .. ',"contact_name":' .. json_string(account.contact_name)
    .. ',"contact_email":' .. json_string(account.contact_email)
    .. ',"contact_phone":' .. json_string(account.contact_phone)
    .. ',"dealer":' .. json_string(account.dealer or '')
    .. ',"preferences":' .. preferences_json(account, plan)
    .. ',"open_sessions":' .. open_sessions
    .. ',"credit_limit_override":' .. (account.credit_limit_override == '1' and 'true' or 'false')
    .. ',"billing_cycle_day":' .. format_integer(account.billing_cycle_day)
    .. ',"available":' .. format_integer(available_money(account))
    .. ',"data_overage_spent_minor":' .. format_integer(data_overage_spent(account, now_ms))
    .. ',"loan_outstanding":' .. format_integer(account.loan_outstanding)
    .. ',"group_id":' .. json_string(account.group_id or '')
    .. ',"group_holding":' .. format_integer(account.group_holding or 0)
    .. ',"data_overage_cap_minor":' .. format_integer(plan and plan.monthly_data_overage_cap_minor or 0)
    .. ',"reminders_sent":' .. format_integer(account.reminders_sent)
    .. ',"next_status":' .. (next_step and NEXT_LADDER_STATUS[account.status] or 0)
    .. ',"next_status_at_ms":' .. format_integer(next_step or 0)
    .. ',"buckets":[' .. table.concat(buckets, ',') .. ']'
    .. ',"bonus_instalments":' .. instalments_json(account) .. '}'
end

-- The answer of a keyed money call (top_up, borrow): the card, whether it was a replay, the entry's seq.
local function keyed_answer_json(account, keys, now_ms, replayed, seq)
  return '{"account":' .. account_json(account, redis.call('SCARD', keys.sessions), now_ms) .. ',"replayed":'
    .. replayed .. ',"ledger_seq":' .. seq .. '}'
end
