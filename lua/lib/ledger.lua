--[=[
The account's ledger: pending entries appended with the hash chain, and trimmed to the newest
limits.max_ledger_entries with what is trimmed carried in the account (lib/account.lua describes the list).
uses: numbers
]=]
-- Keeps the newest max_ledger_entries entries; what is trimmed is carried in the hash.
local function trim_ledger(account, ledger_key)
  local excess = account.ledger_seq - account.ledger_first_seq + 1 - CONFIG.limits.max_ledger_entries
  if excess <= 0 then
    return
  end
  for _, entry in ipairs(redis.call('LRANGE', ledger_key, 0, excess - 1)) do
    local amount, hash = string.match(entry, '^%d+|%d+|[%w_]+|(%-?%d+)|%-?%d+|[^|]*|(%x+)|')
    assert(amount, 'corrupt ledger entry')
    account.ledger_carried = account.ledger_carried + tonumber(amount)
    account.ledger_trimmed_hash = hash
  end
  redis.call('LTRIM', ledger_key, excess, -1)
  account.ledger_first_seq = account.ledger_first_seq + excess
end

local function append_ledger(account, ledger_key)
  for _, entry in ipairs(account.pending_ledger) do
    assert(account.actor, 'a ledger entry without an actor')
    local head = table.concat({ format_integer(entry[1]), format_integer(entry[2]), entry[3],
      format_integer(entry[4]), format_integer(entry[5]), account.actor }, '|')
    local hash = redis.sha1hex(account.ledger_hash .. '\n' .. head .. '|' .. entry[6])
    redis.call('RPUSH', ledger_key, head .. '|' .. hash .. '|' .. entry[6])
    account.ledger_hash = hash
  end
  trim_ledger(account, ledger_key)
end
