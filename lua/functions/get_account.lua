--[=[
get_account — the subscriber card. Read-only.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set
KEYS[+1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<token hash>, only in a SelfService call:
         absent, the call is refused SESSION_ENDED before anything else (lib/keys.lua)
ARGV[1] now_ms     integer, Unix ms: the billing cycle the card's data overage spend is of
ARGV[2] account_id [A-Za-z0-9._:-]{1,64}
Returns {code, message, account_json}. Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

local function read_account(keys, args)
  check_argument_count(args, 2)
  local now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER)
  check_text(args[2], 'account_id', ID_PATTERN, 64)
  return { account = load_existing_account(keys.account), now_ms = now_ms }
end

local function get_account(raw_keys, args)
  local keys = named_keys('get_account', raw_keys)
  local found, outcome = run_checked(read_account, keys, args)
  if not found then
    return reply(outcome.code, outcome.message)
  end
  return reply(CODE.SUCCESS, '', account_json(outcome.account, redis.call('SCARD', keys.sessions), outcome.now_ms))
end

redis.register_function { function_name = 'get_account', callback = get_account, flags = { 'no-writes' } }
