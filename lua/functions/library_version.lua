--[=[
library_version — the version (content hash) of the loaded library, so a starting server loads its
own library only when the one in Redis differs. Read-only.

No KEYS, no ARGV. Returns {SUCCESS, '', version}.
]=]

redis.register_function {
  function_name = 'library_version',
  callback = function() return reply(CODE.SUCCESS, '', LIBRARY_VERSION) end,
  flags = { 'no-writes' },
}
