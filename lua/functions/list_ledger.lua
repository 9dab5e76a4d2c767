--[=[
list_ledger — one page of an account's ledger, newest first. Read-only.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>          hash
KEYS[2] ledger     cd:{p:<n>}:ledger:<account_id>        stream
ARGV[1] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[2] limit       integer 1..max_ledger_page
ARGV[3] before_seq  integer 0..2^53-1; 0 = from the newest entry, else entries with seq < before_seq
Returns {code, message, '[[seq, time_ms, kind, amount, balance_after, reference], ...]'}.
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

local function check_list_ledger(keys, args)
  check_argument_count(args, 3)
  check_text(args[1], 'account_id', ID_PATTERN, 64)
  local limit = parse_integer(args[2], 'limit', 1, CONFIG.limits.max_ledger_page)
  local before_seq = parse_integer(args[3], 'before_seq', 0, MAX_EXACT_INTEGER)
  load_existing_account(keys[1])
  return { limit = limit, before_seq = before_seq }
end

local function entry_json(entry)
  local seq = string.match(entry[1], '^(%d+)%-')
  local fields = {}
  for index = 1, #entry[2], 2 do
    fields[entry[2][index]] = entry[2][index + 1]
  end
  return '[' .. seq .. ',' .. fields.time_ms .. ',' .. json_string(fields.kind) .. ',' .. fields.amount .. ','
    .. fields.balance_after .. ',' .. json_string(fields.reference) .. ']'
end

local function list_ledger(keys, args)
  local checked, page = run_checked(check_list_ledger, keys, args)
  if not checked then
    return reply(page.code, page.message)
  end
  local newest = '+'
  if page.before_seq > 0 then
    newest = '(' .. format_integer(page.before_seq) .. '-0'
  end
  local entries = redis.call('XREVRANGE', keys[2], newest, '-', 'COUNT', page.limit)
  local parts = {}
  for _, entry in ipairs(entries) do
    parts[#parts + 1] = entry_json(entry)
  end
  return reply(CODE.SUCCESS, '', '[' .. table.concat(parts, ',') .. ']')
end

redis.register_function { function_name = 'list_ledger', callback = list_ledger, flags = { 'no-writes' } }
