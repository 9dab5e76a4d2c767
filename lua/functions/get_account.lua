--[=[
get_account — the subscriber card. Read-only.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             hash
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set
ARGV[1] account_id [A-Za-z0-9._:-]{1,64}
Returns {code, message, account_json}. Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

local function read_account(keys, args)
  check_argument_count(args, 1)
  check_text(args[1], 'account_id', ID_PATTERN, 64)
  return load_existing_account(keys[1])
end

local function get_account(keys, args)
  local found, account = run_checked(read_account, keys, args)
  if not found then
    return reply(account.code, account.message)
  end
  return reply(CODE.SUCCESS, '', account_json(account, redis.call('SCARD', keys[2])))
end

redis.register_function { function_name = 'get_account', callback = get_account, flags = { 'no-writes' } }
