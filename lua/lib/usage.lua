--[=[
Usage records: what was used and what it cost, one stream per partition (cd:{p:<n>}:usage), one entry
per rated part of a unit of a commit or EVENT (a tariff time change splits a unit's usage in two
parts), appended in the call that charged it, so that a record exists if and only if its charge
happened. Fields: time_ms, account_id, gateway_id, session_id, request_number, rating_group,
service_id, unit, units, charged, from_buckets, tariff, destination, zone, dealer, provider, actor,
reference: that of the ledger entry that charged it (the auditor matches the two), and bonus: of
charged, what bonus money paid (the ledger debits the rest; absent from records written before bonus
money: 0). Every record has the same fields, so a stream node stores their names once.
Trimmed here, approximately: to limits.max_usage_per_partition entries, and of entries older than
limits.usage_retention_s by the stream's own clock (Redis' time, which stream ids carry; the
server's now_ms may be moved, by tests or a skewed server, and must not decide what is dropped).
uses: numbers
]=]

-- request: now_ms, account_id, gateway_id, session_id, request_number, actor, reference and usage, a list of
-- { rating_group, service_id, unit, zone, destination, part = { units, from_buckets, charged, bonus, tariff } }.
local function append_usage(usage_key, account, request)
  local plan = CONFIG.plans[account.plan]
  local newest_id
  for _, record in ipairs(request.usage) do
    local part = record.part
    newest_id = redis.call('XADD', usage_key, 'MAXLEN', '~', CONFIG.limits.max_usage_per_partition, '*',
      'time_ms', format_integer(request.now_ms), 'account_id', request.account_id,
      'gateway_id', request.gateway_id, 'session_id', request.session_id,
      'request_number', request.request_number, 'rating_group', record.rating_group,
      'service_id', record.service_id, 'unit', record.unit, 'units', format_integer(part.units),
      'charged', format_integer(part.charged), 'from_buckets', format_integer(part.from_buckets),
      'tariff', part.tariff, 'destination', record.destination, 'zone', record.zone,
      'dealer', account.dealer, 'provider', plan and plan.providers[part.tariff] or '', 'actor', request.actor,
      'reference', request.reference, 'bonus', format_integer(part.bonus or 0))
  end
  if newest_id then
    local newest_ms = tonumber(string.match(newest_id, '^(%d+)-'))
    redis.call('XTRIM', usage_key, 'MINID', '~', newest_ms - CONFIG.limits.usage_retention_s * 1000)
  end
end
