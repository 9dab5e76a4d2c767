--[=[
get_group — a shared wallet as JSON (lib/group.lua group_json): balance, members with their caps and
what they were allocated in the billing cycle of now_ms, transfers not yet settled. Reads only.

KEYS[1] group  cd:{p:<n>}:group:<group_id>   hash (lib/group.lua)
ARGV[1] now_ms    integer, Unix ms
ARGV[2] group_id  [A-Za-z0-9._:-]{1,64}
Returns {code, message, <group_json>}.
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

local function check_get_group(keys, args)
  check_argument_count(args, 2)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    group_id = check_text(args[2], 'group_id', ID_PATTERN, 64),
  }
  return { request = request, group = group_wallet.load_existing(keys.group) }
end

local function get_group(raw_keys, args)
  local keys = named_keys('get_group', raw_keys)
  local checked, outcome = run_checked(check_get_group, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  return reply(CODE.SUCCESS, '', group_wallet.json(outcome.group, outcome.request.now_ms))
end

redis.register_function({ function_name = 'get_group', callback = get_group, flags = { 'no-writes' } })
