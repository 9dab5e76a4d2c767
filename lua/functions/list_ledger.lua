--[=[
list_ledger — one page of an account's ledger, newest first. Read-only.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>          packed account (lib/account.lua)
KEYS[2] ledger     cd:{p:<n>}:ledger:<account_id>        list (lib/account.lua)
KEYS[+1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<token hash>, only in a SelfService call:
         absent, the call is refused SESSION_ENDED before anything else (lib/keys.lua)
ARGV[1] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[2] limit       integer 1..max_ledger_page
ARGV[3] before_seq  integer 0..2^53-1; 0 = from the newest entry, else entries with seq < before_seq
Returns {code, message, '[[seq, time_ms, kind, amount, balance_after, reference, actor], ...]'}.
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

local function check_list_ledger(keys, args)
  check_argument_count(args, 3)
  check_text(args[1], 'account_id', ID_PATTERN, 64)
  local limit = parse_integer(args[2], 'limit', 1, CONFIG.limits.max_ledger_page)
  local before_seq = parse_integer(args[3], 'before_seq', 0, MAX_EXACT_INTEGER)
  local account = load_existing_account(keys.account)
  return { limit = limit, before_seq = before_seq, ledger_seq = account.ledger_seq,
    ledger_first_seq = account.ledger_first_seq }
end

local LEDGER_ENTRY_PATTERN = '^(%d+)|(%d+)|([%w_]+)|(%-?%d+)|(%-?%d+)|([^|]*)|%x+|(.*)$'

local function entry_json(entry)
  local seq, time_ms, kind, amount, balance_after, actor, reference = string.match(entry, LEDGER_ENTRY_PATTERN)
  assert(seq, 'corrupt ledger entry')
  return '[' .. seq .. ',' .. time_ms .. ',' .. json_string(kind) .. ',' .. amount .. ',' .. balance_after .. ','
    .. json_string(reference) .. ',' .. json_string(actor) .. ']'
end

local function list_ledger(raw_keys, args)
  local keys = named_keys('list_ledger', raw_keys)
  local checked, page = run_checked(check_list_ledger, keys, args)
  if not checked then
    return reply(page.code, page.message)
  end
  -- entry seq lives at index seq - ledger_first_seq; the page ends just before before_seq (0: at the
  -- newest); entries trimmed by the retention limit are gone
  local first = page.ledger_first_seq
  local newest_seq = page.ledger_seq
  if page.before_seq > 0 then
    newest_seq = math.min(newest_seq, page.before_seq - 1)
  end
  local parts = {}
  if newest_seq >= first then
    local oldest_seq = math.max(first, newest_seq - page.limit + 1)
    local entries = redis.call('LRANGE', keys.ledger, oldest_seq - first, newest_seq - first)
    for index = #entries, 1, -1 do
      parts[#parts + 1] = entry_json(entries[index])
    end
  end
  return reply(CODE.SUCCESS, '', '[' .. table.concat(parts, ',') .. ']')
end

redis.register_function { function_name = 'list_ledger', callback = list_ledger, flags = { 'no-writes' } }
