--[=[
summarize_usage — folds an account's usage records into its summary: totals per local day, rating
group, unit, zone and destination (for the self-service usage page and the notifier's bundle offers, which look
back further than usage_retention_s keeps records), and its recent calls and SMS. Called by the
sweeper with records read from the partition's usage stream, oldest first; the summary keeps the id
of the last record it holds, so a record given twice (a pass repeated after a crash, two sweepers
racing) is skipped: every record counts once.

KEYS[1] summary   cd:{p:<n>}:summary:<account_id>   hash: last_record, pruned_before (day),
                                                      day:<yyyymmdd>:<rating_group>:<unit>:<zone>:<destination> -> '<units> <charged> <records>'
KEYS[2] recent    cd:{p:<n>}:recent:<account_id>    list of '<record_id> <time_ms> <rating_group> <unit> <units> <charged> <destination> <zone>', newest first
ARGV[1] account_id    [A-Za-z0-9._:-]{1,64}
ARGV[2] cutoff_day    yyyymmdd: days before it are dropped (the caller's today minus the retention)
ARGV[3] record_count  integer 1..limits.max_usage_summary_batch
then per record, 10 arguments:
  record_id     '<ms>-<seq>', the usage stream id
  time_ms       integer, Unix ms
  day           yyyymmdd, the record's day in the subscriber's time zone
  rating_group  integer 0..2^32-1
  unit          integer 1..3 (BYTES, SECONDS, EVENTS)
  zone          a zone name or ''
  destination   a destination name or ''
  units         integer 0..limits.max_units
  charged       integer 0..limits.max_amount_minor, minor units
  recent        0 or 1: also list it among the recent calls and SMS
ARGV[last] actor     the caller's identity (not stored)
Both keys expire limits.usage_summary_retention_s after the last write; the recent list keeps the
newest limits.max_recent_usage entries.
Returns {code, message, '<records folded>'}. Codes: SUCCESS, INVALID_REQUEST (field named).
]=]

local FIELDS_PER_RECORD = 10
local RECORD_ID_PATTERN = '^(%d+)%-(%d+)$'
local DAY_PATTERN = '^%d%d%d%d[01]%d[0-3]%d$'
local ZONE_PATTERN = '^[%w_%-]*$'

-- Stream ids compare as (ms, sequence) pairs; both parts fit a double exactly.
local function record_id_after(id, other)
  local ms, sequence = string.match(id, RECORD_ID_PATTERN)
  local other_ms, other_sequence = string.match(other, RECORD_ID_PATTERN)
  ms, other_ms = tonumber(ms), tonumber(other_ms)
  return ms > other_ms or (ms == other_ms and tonumber(sequence) > tonumber(other_sequence))
end

local function check_day(text, field)
  check_text(text, field, DAY_PATTERN, 8)
  local month, day = tonumber(string.sub(text, 5, 6)), tonumber(string.sub(text, 7, 8))
  if month < 1 or month > 12 or day < 1 or day > 31 then
    refuse(CODE.INVALID_REQUEST, field .. ': not a date (yyyymmdd)')
  end
  return text
end

local function check_name(text, field)
  if #text > 64 or not string.find(text, ZONE_PATTERN) then
    refuse(CODE.INVALID_REQUEST, field .. ': a name of at most 64 letters, digits, _ or -')
  end
  return text
end

local function check_record(args, first, index)
  local field = 'records[' .. index .. '].'
  local record = {
    id = check_text(args[first], field .. 'record_id', RECORD_ID_PATTERN, 41),
    time_ms = parse_integer(args[first + 1], field .. 'time_ms', 0, MAX_EXACT_INTEGER),
    day = check_day(args[first + 2], field .. 'day'),
    rating_group = parse_integer(args[first + 3], field .. 'rating_group', 0, MAX_UINT32),
    unit = parse_integer(args[first + 4], field .. 'unit', UNIT.BYTES, UNIT.EVENTS),
    zone = check_name(args[first + 5], field .. 'zone'),
    destination = check_name(args[first + 6], field .. 'destination'),
    units = parse_integer(args[first + 7], field .. 'units', 0, CONFIG.limits.max_units),
    charged = parse_integer(args[first + 8], field .. 'charged', 0, CONFIG.limits.max_amount_minor),
    recent = parse_integer(args[first + 9], field .. 'recent', 0, 1),
  }
  return record
end

local function check_summarize_usage(args)
  local count = parse_integer(args[3], 'record_count', 1, CONFIG.limits.max_usage_summary_batch)
  check_argument_count(args, 4 + count * FIELDS_PER_RECORD)
  local request = {
    account_id = check_text(args[1], 'account_id', ID_PATTERN, 64),
    cutoff_day = check_day(args[2], 'cutoff_day'),
    actor = check_actor(args),
    records = {},
  }
  local previous
  for index = 1, count do
    local record = check_record(args, 4 + (index - 1) * FIELDS_PER_RECORD, index)
    if previous and not record_id_after(record.id, previous) then
      refuse(CODE.INVALID_REQUEST, 'records[' .. index .. '].record_id: records must come oldest first')
    end
    previous = record.id
    request.records[index] = record
  end
  return request
end

local function add_to_day(summary_key, record)
  local field = 'day:' .. record.day .. ':' .. format_integer(record.rating_group) .. ':'
    .. format_integer(record.unit) .. ':' .. record.zone .. ':' .. record.destination
  local units, charged, records = 0, 0, 0
  local stored = redis.call('HGET', summary_key, field)
  if stored then
    units, charged, records = string.match(stored, '^(%d+) (%d+) (%d+)$')
    units, charged, records = tonumber(units), tonumber(charged), tonumber(records)
  end
  redis.call('HSET', summary_key, field, format_integer(units + record.units) .. ' '
    .. format_integer(charged + record.charged) .. ' ' .. format_integer(records + 1))
end

-- Once a day per account: the fields of days before the cutoff go.
local function prune_days(summary_key, cutoff_day)
  local pruned_before = redis.call('HGET', summary_key, 'pruned_before')
  if pruned_before and pruned_before >= cutoff_day then
    return
  end
  for _, field in ipairs(redis.call('HKEYS', summary_key)) do
    local day = string.match(field, '^day:(%d+):')
    if day and day < cutoff_day then
      redis.call('HDEL', summary_key, field)
    end
  end
  redis.call('HSET', summary_key, 'pruned_before', cutoff_day)
end

local function summarize_usage(raw_keys, args)
  local keys = named_keys('summarize_usage', raw_keys)
  local checked, request = run_checked(check_summarize_usage, args)
  if not checked then
    return reply(request.code, request.message)
  end
  local last = redis.call('HGET', keys.summary, 'last_record')
  local folded, listed = 0, 0
  for _, record in ipairs(request.records) do
    if (not last or record_id_after(record.id, last)) and record.day >= request.cutoff_day then
      add_to_day(keys.summary, record)
      if record.recent == 1 then
        redis.call('LPUSH', keys.recent, record.id .. ' ' .. format_integer(record.time_ms) .. ' '
          .. format_integer(record.rating_group) .. ' ' .. format_integer(record.unit) .. ' '
          .. format_integer(record.units) .. ' ' .. format_integer(record.charged) .. ' '
          .. (record.destination == '' and '-' or record.destination) .. ' '
          .. (record.zone == '' and '-' or record.zone))
        listed = listed + 1
      end
      folded = folded + 1
    end
  end
  local newest = request.records[#request.records].id
  if not last or record_id_after(newest, last) then
    redis.call('HSET', keys.summary, 'last_record', newest)
  end
  prune_days(keys.summary, request.cutoff_day)
  redis.call('EXPIRE', keys.summary, CONFIG.limits.usage_summary_retention_s)
  if listed > 0 then
    redis.call('LTRIM', keys.recent, 0, CONFIG.limits.max_recent_usage - 1)
    redis.call('EXPIRE', keys.recent, CONFIG.limits.usage_summary_retention_s)
  end
  return reply(CODE.SUCCESS, '', format_integer(folded))
end

redis.register_function('summarize_usage', summarize_usage)
