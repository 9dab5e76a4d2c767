--[=[
The account's ledger: pending entries appended with the hash chain, and trimmed to the newest
limits.max_ledger_entries with what is trimmed carried in the account (lib/account.lua describes the list),
once limits.ledger_trim_batch entries more have been appended.
uses: numbers
]=]
-- Keeps the newest max_ledger_entries entries; what is trimmed is carried in the account. A full
-- ledger is trimmed once per ledger_trim_batch appends, not at each, and a trim reads one entry, the
-- newest it removes: its balance_after is the sum the removed entries carry (each entry's balance_after
-- is the running sum, which creditd audit checks) and its hash is where the kept chain starts. Reading
-- and parsing every removed entry, one trim per append, cost a charge of a full ledger some 37 000
-- instructions (loadtest.redis_instructions with full ledgers).
local function trim_ledger(account, ledger_key)
  local excess = account.ledger_seq - account.ledger_first_seq + 1 - CONFIG.limits.max_ledger_entries
  if excess < CONFIG.limits.ledger_trim_batch then
    return
  end
  local newest_removed = redis.call('LINDEX', ledger_key, excess - 1)
  assert(newest_removed, 'the ledger holds fewer entries than its sequence numbers say')
  local balance_after, hash = string.match(newest_removed, '^%d+|%d+|[%w_]+|%-?%d+|(%-?%d+)|[^|]*|(%x+)|')
  assert(balance_after, 'corrupt ledger entry')
  account.ledger_carried = tonumber(balance_after)
  account.ledger_trimmed_hash = hash
  redis.call('LTRIM', ledger_key, excess, -1)
  account.ledger_first_seq = account.ledger_first_seq + excess
end

local function append_ledger(account, ledger_key)
  for _, entry in ipairs(account.pending_ledger) do
    assert(account.actor, 'a ledger entry without an actor')
    local head = format_integer(entry[1]) .. '|' .. format_integer(entry[2]) .. '|' .. entry[3] .. '|'
      .. format_integer(entry[4]) .. '|' .. format_integer(entry[5]) .. '|' .. account.actor
    local hash = redis.sha1hex(account.ledger_hash .. '\n' .. head .. '|' .. entry[6])
    redis.call('RPUSH', ledger_key, head .. '|' .. hash .. '|' .. entry[6])
    account.ledger_hash = hash
  end
  trim_ledger(account, ledger_key)
end
