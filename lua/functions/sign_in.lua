--[=[
sign_in — checks a sign-in code: the right one, in time, opens a portal session (stored under the
SHA-256 of its token) and uses the code up; a wrong one takes a try, and the last try takes the
code. A wrong or expired code is an answer, not a refusal (the try it took is written).

KEYS[1] sign_in         cd:{p:<n>}:sign_in:<account_id>                        hash (issue_sign_in_code)
KEYS[2] portal_session  cd:{p:<n>}:portal_session:<account_id>/<idempotency_key>    string: the account id,
                                                                                expiring after limits.portal_session_s
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] code_hash   64 lowercase hex digits: HMAC-SHA256 of account and code typed (core/sign_in_codes.py)
ARGV[4] token_hash  64 lowercase hex digits: SHA-256 of the new session's token
ARGV[5] actor       the caller's identity (not stored)
Returns {code, message, '{"signed_in":0|1,"tries_left":…,"session_expires_at_ms":…}'}.
Codes: SUCCESS, INVALID_REQUEST (field named).
]=]

local function check_sign_in(args)
  check_argument_count(args, 5)
  return {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    code_hash = check_hash(args[3], 'code_hash'),
    token_hash = check_hash(args[4], 'token_hash'),
    actor = check_actor(args),
  }
end

local function answer(signed_in, tries_left, expires_ms)
  return reply(CODE.SUCCESS, '', '{"signed_in":' .. signed_in .. ',"tries_left":' .. format_integer(tries_left)
    .. ',"session_expires_at_ms":' .. format_integer(expires_ms) .. '}')
end

local function sign_in(raw_keys, args)
  local keys = named_keys('sign_in', raw_keys)
  local checked, request = run_checked(check_sign_in, args)
  if not checked then
    return reply(request.code, request.message)
  end
  local stored = redis.call('HMGET', keys.sign_in, 'code_hash', 'expires_ms', 'tries_left')
  local code_hash, expires_ms, tries_left = stored[1], tonumber(stored[2] or '0'), tonumber(stored[3] or '0')
  if not code_hash or code_hash == '' or request.now_ms >= expires_ms or tries_left < 1 then
    return answer(0, 0, 0)
  end
  if code_hash == request.code_hash then
    local session_expires_ms = request.now_ms + CONFIG.limits.portal_session_s * 1000
    -- The code is used up; the issue count (and its window) stays.
    redis.call('HSET', keys.sign_in, 'code_hash', '', 'tries_left', 0)
    redis.call('SET', keys.portal_session, request.account_id, 'PX', CONFIG.limits.portal_session_s * 1000)
    return answer(1, 0, session_expires_ms)
  end
  tries_left = tries_left - 1
  if tries_left == 0 then
    redis.call('HSET', keys.sign_in, 'code_hash', '', 'tries_left', 0)
  else
    redis.call('HSET', keys.sign_in, 'tries_left', tries_left)
  end
  return answer(0, tries_left, 0)
end

redis.register_function('sign_in', sign_in)
