--[=[
sign_out — ends a portal session: its token is no longer accepted (a copied cookie included).

KEYS[1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<idempotency_key>   string
ARGV[1] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[2] actor       the caller's identity (not stored)
Returns {code, message, '1'} when the session existed, '0' when not. Codes: SUCCESS, INVALID_REQUEST.
]=]

local function sign_out(raw_keys, args)
  local keys = named_keys('sign_out', raw_keys)
  local checked, request = run_checked(function()
    check_argument_count(args, 2)
    return { account_id = check_text(args[1], 'account_id', ID_PATTERN, 64), actor = check_actor(args) }
  end)
  if not checked then
    return reply(request.code, request.message)
  end
  return reply(CODE.SUCCESS, '', format_integer(redis.call('DEL', keys.portal_session)))
end

redis.register_function('sign_out', sign_out)
