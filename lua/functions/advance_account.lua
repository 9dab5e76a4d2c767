--[=[
advance_account — applies what time has made due for one account (lib/lifecycle.lua): plan changes,
the suspension ladder's steps (one-way still in debt becomes two-way with the plan's late fee,
two-way becomes terminated and the id is blacklisted), reminders of a coming step, bucket expiry.
The sweeper calls it for the accounts the partition's due index lists; requests apply the same
lazily. Each change writes its ledger entry, event and gateway notifications. A shared wallet's
member short of money (lib/lifecycle.lua group_refill_due_ms) is answered with the refill it wants,
which the sweeper asks its group for (lib/group.lua), and not again for group_refill_retry_s.

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: notifications)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
ARGV[1] now_ms      integer, Unix ms
ARGV[2] account_id  [A-Za-z0-9._:-]{1,64}
ARGV[3] actor       the sweeper's identity
Returns {code, message, '{"status":<status after>[,"group_refill":{"group_id":…,"amount":…}]}'}; the
account's place in the due index is
rewritten from its state (taken off when nothing is due, an unknown account too).
Codes: SUCCESS, INVALID_REQUEST, USER_UNKNOWN.
]=]

local function advance_account(raw_keys, args)
  local keys = named_keys('advance_account', raw_keys)
  local checked, outcome = run_checked(check_account_call, keys, args)
  if not checked then
    if outcome.code == CODE.USER_UNKNOWN then
      redis.call('ZREM', keys.due, args[2])
    end
    return reply(outcome.code, outcome.message)
  end
  local account = outcome.account
  apply_due_changes(account, outcome.request.now_ms)
  account.indexed_due_ms = -1  -- whatever the index held, rewrite it
  local refill_due_ms, refill = group_refill_due_ms(account), ''
  if refill_due_ms and refill_due_ms <= outcome.request.now_ms then
    account.group_refill_tried_ms = outcome.request.now_ms
    refill = ',"group_refill":{"group_id":' .. json_string(account.group_id) .. ',"amount":'
      .. format_integer(account.group_refill_minor) .. '}'
  end
  if account_changed(account) or refill ~= '' then
    save_account(account, keys)
  else
    index_account(account, keys.due, keys.blacklist)
  end
  return reply(CODE.SUCCESS, '', '{"status":' .. account.status .. refill .. '}')
end

redis.register_function('advance_account', advance_account)
