--[=[
Keys by name: each function reads its KEYS through named_keys, never by position. KEY_NAMES (function
name -> its key names in KEYS order; a SelfService call adds its portal session's key last, see
named_keys) is generated from creditd/store/calls.py's KEY_LAYOUTS when the
library is rendered, so the order of KEYS is written once; so is KEY_NAMES.bind (function name -> a
function returning its KEYS as one table by name).
uses: (nothing)
]=]

-- The keys of a call as a table by name; a wrong count is a bug of the caller's builder. A call made
-- for a portal session (SelfService) carries one more key, the session's (cd:{p:<n>}:portal_session:
-- <account_id>/<token hash>, in the account's slot), as portal_session: run_checked refuses the call
-- with SESSION_ENDED when it no longer exists, in the same call as what it guards.
local function named_keys(function_name, keys)
  local names = KEY_NAMES[function_name]
  local count = #keys
  if count ~= #names then -- (not assert: its message would be built on every call)
    if count ~= #names + 1 or not string.find(keys[count], ':portal_session:', 1, true) then
      error(function_name .. ': expected ' .. #names .. ' keys, got ' .. count)
    end
    local bound = KEY_NAMES.bind[function_name](keys)
    bound.portal_session = keys[count]
    return bound
  end
  return KEY_NAMES.bind[function_name](keys)
end

-- The packed value at key (an account, a session): its string, false when there is none; and true
-- as the second value when the key holds a hash instead, as versions before packing wrote them (GET
-- answers WRONGTYPE), which the caller reads the older way.
local function packed_at(key)
  local packed = redis.pcall('GET', key)
  if type(packed) == 'table' then
    assert(string.find(packed.err, 'WRONGTYPE', 1, true), packed.err)
    return false, true
  end
  return packed, false
end
