--[=[
Usage records: what was used and what it cost, one stream per partition (cd:{p:<n>}:usage), one entry
per rated part of a unit of a commit or EVENT (a tariff time change splits a unit's usage in two
parts), appended in the call that charged it, so that a record exists if and only if its charge
happened. One stream field, 'usage', holds the record's values joined by tabs (no value may hold one:
ids, dealers and the configuration's names are [A-Za-z0-9._:-], session ids and actors printable
without tabs), in this order: time_ms, account_id,
gateway_id, session_id, request_number, rating_group, service_id, unit, units, charged, from_buckets,
tariff, destination, zone, dealer, provider, actor, reference: that of the ledger entry that charged
it (the auditor matches the two), and bonus: of charged, what bonus money paid (the ledger debits the
rest). One field rather than nineteen: each argument of the XADD cost the charge some 1 500
instructions (read into Redis, appended to the stream, written to the AOF), so nineteen fields cost
it 5 % of its Redis time (loadtest.redis_instructions). Records written before
it hold each value in a field of its own (no bonus field in those before bonus money: 0);
creditd/core/usage.py usage_fields reads both.
Trimmed here, approximately, at the first append to a stream after the library is loaded and every
USAGE_TRIM.appends_between-th one after: to limits.max_usage_per_partition entries, and of entries
older than limits.usage_retention_s by the stream's own clock (Redis' time, which stream ids carry;
the server's now_ms may be moved, by tests or a skewed server, and must not decide what is dropped).
A stream therefore holds up to appends_between records (and, the trims being approximate, up to a
stream node of them) beyond its bound. Trimming at each append cost every charge that appends: the
XADD's MAXLEN arguments some 4 000 instructions (0.6 % of the standard mix), reading the newest id
and the XTRIM by age some 10 000 (1.4 % of an UPDATE); a bound of a million records or a retention
of days loses nothing by being kept every few dozen appends. The count lives in the library's Lua
state (lost at a restart or a reload, which only brings the next trim forward); replicas and the AOF
get the XTRIMs themselves.
uses: numbers
]=]

local USAGE_TRIM = { appends_between = 64, appends_left = {} }

-- request: now_ms, account_id, gateway_id, session_id, request_number, actor, reference and usage, a list of
-- { rating_group, service_id, unit, zone, destination, part = { units, from_buckets, charged, bonus, tariff } }.
local function append_usage(usage_key, account, request)
  local plan = CONFIG.plans[account.plan]
  local newest_id
  for _, record in ipairs(request.usage) do
    local part = record.part
    -- one concatenation of every value and tab, not a table of the values joined: no table to make
    newest_id = redis.call('XADD', usage_key, '*', 'usage',
      format_integer(request.now_ms) .. '\t' .. request.account_id .. '\t' .. request.gateway_id .. '\t'
        .. request.session_id .. '\t' .. format_integer(request.request_number) .. '\t'
        .. format_integer(record.rating_group) .. '\t' .. format_integer(record.service_id) .. '\t'
        .. format_integer(record.unit) .. '\t' .. format_integer(part.units) .. '\t' .. format_integer(part.charged)
        .. '\t' .. format_integer(part.from_buckets) .. '\t' .. part.tariff .. '\t' .. record.destination .. '\t'
        .. record.zone .. '\t' .. account.dealer .. '\t' .. (plan and plan.providers[part.tariff] or '') .. '\t'
        .. request.actor .. '\t' .. request.reference .. '\t' .. format_integer(part.bonus or 0))
  end
  if newest_id == nil then
    return
  end
  local appends_left = USAGE_TRIM.appends_left[usage_key] or 0
  if appends_left > 0 then
    USAGE_TRIM.appends_left[usage_key] = appends_left - 1
    return
  end
  USAGE_TRIM.appends_left[usage_key] = USAGE_TRIM.appends_between - 1
  redis.call('XTRIM', usage_key, 'MAXLEN', '~', CONFIG.limits.max_usage_per_partition)
  local newest_ms = tonumber(string.match(newest_id, '^(%d+)-'))
  redis.call('XTRIM', usage_key, 'MINID', '~', newest_ms - CONFIG.limits.usage_retention_s * 1000)
end
