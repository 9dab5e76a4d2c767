--[=[
set_preferences — how and when the subscriber wants to be told: language, time zone, channels,
marketing opt-in and quiet hours. Replaces all of them; an empty field means the plan's default
(the card shows the values in force). Writes the account's 'preferences' field and a
preferences_changed event; no ledger entry (no money moves).

KEYS[1] account    cd:{p:<n>}:acct:<account_id>             packed account (lib/account.lua)
KEYS[2] sessions   cd:{p:<n>}:sessions:<account_id>        set (read: the card)
KEYS[3] ledger     cd:{p:<n>}:ledger:<account_id>           list (not written)
KEYS[4] events     cd:{p:<n>}:events                        stream
KEYS[5] stats      cd:{p:<n>}:stats                         hash
KEYS[6] due        cd:{p:<n>}:due                           zset (lib/lifecycle.lua)
KEYS[7] blacklist  cd:{p:<n>}:blacklist                     set
KEYS[+1] portal_session  cd:{p:<n>}:portal_session:<account_id>/<token hash>, only in a SelfService call:
         absent, the call is refused SESSION_ENDED before anything else (lib/keys.lua)
ARGV[1] now_ms             integer, Unix ms
ARGV[2] account_id         [A-Za-z0-9._:-]{1,64}
ARGV[3] language           '' or one of CONFIG.languages (en, th, ru, zh)
ARGV[4] time_zone          '' or an IANA name ([A-Za-z0-9_+-/]{1,64}; the edge checks it exists)
ARGV[5] channels           '' or comma-separated distinct sms, email, webhook (email needs a contact e-mail)
ARGV[6] marketing_opt_in   0 or 1
ARGV[7] quiet_hours_start  '' or HH:MM
ARGV[8] quiet_hours_end    '' or HH:MM (with start, or neither)
ARGV[9] actor              the caller's identity
Returns {code, message, account_json}.
Codes: SUCCESS, INVALID_REQUEST (field named), USER_UNKNOWN, ACCOUNT_TERMINATED.
]=]

local TIME_ZONE_PATTERN = '^[%w_%+%-/]+$'
local CLOCK_PATTERN = '^[0-2]%d:[0-5]%d$'
local CHANNEL = { sms = true, email = true, webhook = true }

local function check_channels(text, account)
  local seen = {}
  for channel in string.gmatch(text, '[^,]+') do
    if not CHANNEL[channel] then
      refuse(CODE.INVALID_REQUEST, 'channels: unknown channel ' .. channel .. ' (sms, email, webhook)')
    end
    if seen[channel] then
      refuse(CODE.INVALID_REQUEST, 'channels: ' .. channel .. ' appears twice')
    end
    seen[channel] = true
  end
  if text ~= '' and (string.find(text, ',,') or string.find(text, '^,') or string.find(text, ',$')) then
    refuse(CODE.INVALID_REQUEST, 'channels: comma-separated names')
  end
  if seen.email and (account.contact_email or '') == '' then
    refuse(CODE.INVALID_REQUEST, 'channels: email needs the account to have a contact e-mail')
  end
end

local function check_clock(text, field)
  if text ~= '' and (not string.find(text, CLOCK_PATTERN) or text > '23:59') then
    refuse(CODE.INVALID_REQUEST, field .. ': HH:MM, 00:00 to 23:59')
  end
  return text
end

local function check_set_preferences(keys, args)
  check_argument_count(args, 9)
  local request = {
    now_ms = parse_integer(args[1], 'now_ms', 0, MAX_EXACT_INTEGER),
    account_id = check_text(args[2], 'account_id', ID_PATTERN, 64),
    language = args[3], time_zone = args[4], channels = args[5],
    marketing_opt_in = parse_integer(args[6], 'marketing_opt_in', 0, 1),
    quiet_hours_start = check_clock(args[7], 'quiet_hours_start'),
    quiet_hours_end = check_clock(args[8], 'quiet_hours_end'),
    actor = check_actor(args),
  }
  if request.language ~= '' and not CONFIG.languages[request.language] then
    refuse(CODE.INVALID_REQUEST, 'language: not one of the supported languages')
  end
  if request.time_zone ~= '' then
    check_text(request.time_zone, 'time_zone', TIME_ZONE_PATTERN, 64)
  end
  if (request.quiet_hours_start == '') ~= (request.quiet_hours_end == '') then
    refuse(CODE.INVALID_REQUEST, 'quiet_hours_end: quiet_hours_start and quiet_hours_end go together')
  end
  local account = load_existing_account(keys.account)
  account.actor = request.actor
  refuse_terminated(account)
  check_channels(request.channels, account)
  return { account = account, request = request }
end

local function set_preferences(raw_keys, args)
  local keys = named_keys('set_preferences', raw_keys)
  local checked, outcome = run_checked(check_set_preferences, keys, args)
  if not checked then
    return reply(outcome.code, outcome.message)
  end
  local account, request = outcome.account, outcome.request
  apply_due_changes(account, request.now_ms)
  account.preferences = encode_preferences(request)
  queue_event(account, request.now_ms, 'preferences_changed', account.preferences)
  save_account(account, keys)
  return reply(CODE.SUCCESS, '', account_json(account, redis.call('SCARD', keys.sessions), request.now_ms))
end

redis.register_function('set_preferences', set_preferences)
