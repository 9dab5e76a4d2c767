--[=[
issue_sign_in_code — stores a new self-service sign-in code for an account (its keyed hash; the caller
sends the code to the subscriber and keeps no copy), replacing any earlier one: it works for
limits.sign_in_code_lifetime_s and limits.max_sign_in_tries wrong tries. At most
limits.max_sign_in_codes codes per account per limits.sign_in_window_s, so that nobody can flood a
subscriber with texts.

KEYS[1] account   cd:{p:<n>}:acct:<account_id>      packed account (read: it exists and is not terminated)
KEYS[2] sign_in   cd:{p:<n>}:sign_in:<account_id>   hash: code_hash, expires_ms, tries_left,
                                                     window_start_ms, issued; expires with the window
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] code_hash   64 lowercase hex digits: HMAC-SHA256 of account and code (core/sign_in_codes.py)
ARGV[4] actor       the caller's identity (not stored)
Returns {code, message, '{"expires_at_ms":…}'}.
Codes: SUCCESS, INVALID_REQUEST (field named), USER_UNKNOWN, ACCOUNT_TERMINATED, TOO_MANY (the
message says when the window ends).
]=]

local function check_issue_sign_in_code(keys, args)
  check_argument_count(args, 4)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    code_hash = check_hash(args[3], 'code_hash'),
    actor = check_actor(args),
  }
  if load_existing_account(keys.account).status == STATUS.TERMINATED then
    refuse(CODE.ACCOUNT_TERMINATED, 'account_id: the account is terminated')
  end
  local limits = CONFIG.limits
  local window = redis.call('HMGET', keys.sign_in, 'window_start_ms', 'issued')
  local window_start_ms, issued = tonumber(window[1] or '0'), tonumber(window[2] or '0')
  if request.now_ms >= window_start_ms + limits.sign_in_window_s * 1000 then
    window_start_ms, issued = request.now_ms, 0
  end
  if issued >= limits.max_sign_in_codes then
    local wait_s = ceil_divide(window_start_ms + limits.sign_in_window_s * 1000 - request.now_ms, 1000)
    refuse(CODE.TOO_MANY, 'account_id: ' .. limits.max_sign_in_codes .. ' sign-in codes already sent; try again in '
      .. format_integer(wait_s) .. ' s')
  end
  request.window_start_ms, request.issued = window_start_ms, issued
  return request
end

local function issue_sign_in_code(raw_keys, args)
  local keys = named_keys('issue_sign_in_code', raw_keys)
  local checked, request = run_checked(check_issue_sign_in_code, keys, args)
  if not checked then
    return reply(request.code, request.message)
  end
  local limits = CONFIG.limits
  local expires_ms = request.now_ms + limits.sign_in_code_lifetime_s * 1000
  redis.call('HSET', keys.sign_in, 'code_hash', request.code_hash, 'expires_ms', format_integer(expires_ms),
    'tries_left', limits.max_sign_in_tries, 'window_start_ms', format_integer(request.window_start_ms),
    'issued', request.issued + 1)
  redis.call('PEXPIRE', keys.sign_in, math.max(limits.sign_in_window_s, limits.sign_in_code_lifetime_s) * 1000)
  return reply(CODE.SUCCESS, '', '{"expires_at_ms":' .. format_integer(expires_ms) .. '}')
end

redis.register_function('issue_sign_in_code', issue_sign_in_code)
