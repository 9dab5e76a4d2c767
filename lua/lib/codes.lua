--[=[
Status codes and enum values shared by every function. One entry per line: tests/test_lua_codes.py
parses this file and checks it against the enums of creditd/store/codes.py and the proto.
Diameter result codes (2001..5031) go to gateways as they are; 6xxx codes are internal to the
Accounts service, mapped to errors by creditd/store/replies.py and to gRPC status codes by
creditd/api/interceptors.py.
uses: (nothing)
]=]
local CODE = {
  SUCCESS = 2001,
  END_USER_SERVICE_DENIED = 4010,
  CREDIT_LIMIT_REACHED = 4012,
  UNKNOWN_SESSION = 5002,
  INVALID_REQUEST = 5004,
  RESOURCES_EXCEEDED = 5006,
  USER_UNKNOWN = 5030,
  RATING_FAILED = 5031,
  ACCOUNT_EXISTS = 6001,
  ACCOUNT_TERMINATED = 6002,
  REFUSED = 6003,
  TOO_MANY = 6004,
  SESSION_ENDED = 6005,
}

local STATUS = {
  ACTIVE = 1,
  ONE_WAY_SUSPENDED = 2,
  TWO_WAY_SUSPENDED = 3,
  TERMINATED = 4,
}

local UNIT = {
  BYTES = 1,
  SECONDS = 2,
  EVENTS = 3,
  MONEY = 4,
}

local POLICY = {
  CAP = 1,
  THROTTLE = 2,
  OVERAGE = 3,
}

local FINAL_UNIT_ACTION = {
  NONE = 0,
  TERMINATE = 1,
  REDIRECT = 2,
  RESTRICT_ACCESS = 3,
}

-- The format of a charge's answer (lib/answer.lua), which its caller names.
local ANSWER_FORMAT = {
  JSON = 0,
  PROTOBUF = 1,
}

local REQUEST_TYPE = {
  INITIAL = 1,
  UPDATE = 2,
  TERMINATE = 3,
  EVENT = 4,
}

-- Spelled out: library loading runs top-level code without the Lua base library (no pairs).
local STATUS_NAME = {
  [1] = 'ACTIVE',
  [2] = 'ONE_WAY_SUSPENDED',
  [3] = 'TWO_WAY_SUSPENDED',
  [4] = 'TERMINATED',
}
