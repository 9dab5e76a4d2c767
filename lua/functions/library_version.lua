--[=[
library_version — the version (content hash) of the loaded library, so a starting server loads its
own library only when the one in Redis differs. Read-only.

No KEYS, no ARGV. Returns the version string.
]=]

redis.register_function {
  function_name = 'library_version',
  callback = function() return LIBRARY_VERSION end,
  flags = { 'no-writes' },
}
