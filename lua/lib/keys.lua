--[=[
Keys by name: each function reads its KEYS through named_keys, never by position. KEY_NAMES (function
name -> its key names in KEYS order) is generated from creditd/store/calls.py's KEY_LAYOUTS when the
library is rendered, so the order of KEYS is written once; so is KEY_NAMES.bind (function name -> a
function returning its KEYS as one table by name).
uses: (nothing)
]=]

-- The keys of a call as a table by name; a wrong count is a bug of the caller's builder.
local function named_keys(function_name, keys)
  local names = KEY_NAMES[function_name]
  if #keys ~= #names then -- (not assert: its message would be built on every call)
    error(function_name .. ': expected ' .. #names .. ' keys, got ' .. #keys)
  end
  return KEY_NAMES.bind[function_name](keys)
end
