#!lua name=creditd_charge_floor
--[=[
charge_floor — what any charge must at least do in Redis under creditd's contract, with no rating,
no ladder, no buckets and the most compact storage there is (loadtest/redis_time.py measures it beside
`charge` and the reserve-shaped baseline): read the account and the session, each one packed string;
fingerprint the request (a retransmission with another payload must be refused); append the ledger
entry with its hash chain; write the account and the session with its stored answer (replays get it);
index the open session (its account's set, the deadline set); append the usage record and trim.

KEYS[1] account    string: the account, MessagePack {balance, reserved, ledger_seq, ledger_hash, ...}
KEYS[2] session    string: the session, MessagePack {last_number, last_fingerprint, last_answer}
KEYS[3] ledger     list
KEYS[4] sessions   set
KEYS[5] deadlines  zset
KEYS[6] usage      stream
ARGV[1] now_ms     integer, Unix ms
ARGV[2..]          the rest of a charge's arguments as separate words, fingerprinted only (the form
                   charge took before its request values were packed); or, with three arguments,
                   ARGV[2] the request values packed as charge takes them (read, since any charge
                   must read its request, and fingerprinted) and ARGV[3] the actor
Returns {1, '', answer}, the shape of charge's reply.
]=]
local ANSWER = '[2001,1,"",[[1,2001,3,1000000,3600,0,"",0,0,1000,"data_home",0,800000,0]]]'

local function charge_floor(keys, args)
  local now_ms = args[1]
  local account = cmsgpack.unpack(redis.call('GET', keys[1]))
  local stored_session = redis.call('GET', keys[2])
  local session = stored_session and cmsgpack.unpack(stored_session) or { last_number = 0 }
  local fingerprint
  if #args == 3 then
    local _, values = cmsgpack.unpack_one(args[2], 0)
    assert(type(values) == 'table', 'request values: not an array')
    fingerprint = redis.sha1hex(args[2])
  else
    fingerprint = redis.sha1hex(table.concat(args, '\n'))
  end
  account.balance = account.balance - 1000
  account.ledger_seq = account.ledger_seq + 1
  local entry = account.ledger_seq .. '|' .. now_ms .. '|charge|-1000|' .. account.balance .. '|loadtest'
  account.ledger_hash = redis.sha1hex(account.ledger_hash .. '\n' .. entry)
  redis.call('RPUSH', keys[3], entry .. '|' .. account.ledger_hash .. '|gw s1 1')
  redis.call('SET', keys[1], cmsgpack.pack(account))
  session.last_number, session.last_fingerprint, session.last_answer = session.last_number + 1, fingerprint, ANSWER
  redis.call('SET', keys[2], cmsgpack.pack(session))
  redis.call('SADD', keys[4], 'gw s1')
  redis.call('ZADD', keys[5], now_ms + 3600000, 'account gw s1')
  redis.call('XADD', keys[6], 'MAXLEN', '~', 1000000, '*', 'time_ms', now_ms, 'account_id', '66900000001',
    'gateway_id', 'gw', 'session_id', 's1', 'request_number', '1', 'rating_group', '1', 'service_id', '0',
    'unit', '3', 'units', '1000000', 'charged', '1000', 'from_buckets', '0', 'tariff', 'data_home',
    'destination', '', 'zone', 'home', 'dealer', '', 'provider', '', 'actor', 'loadtest', 'reference', 'gw s1 1')
  redis.call('XTRIM', keys[6], 'MINID', '~', now_ms - 604800000)
  return { 1, '', ANSWER }
end

redis.register_function('charge_floor', charge_floor)
