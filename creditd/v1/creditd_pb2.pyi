from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResultCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_CODE_UNSPECIFIED: _ClassVar[ResultCode]
    SUCCESS: _ClassVar[ResultCode]
    END_USER_SERVICE_DENIED: _ClassVar[ResultCode]
    CREDIT_LIMIT_REACHED: _ClassVar[ResultCode]
    UNKNOWN_SESSION: _ClassVar[ResultCode]
    INVALID_REQUEST: _ClassVar[ResultCode]
    RESOURCES_EXCEEDED: _ClassVar[ResultCode]
    UNABLE_TO_COMPLY: _ClassVar[ResultCode]
    USER_UNKNOWN: _ClassVar[ResultCode]
    RATING_FAILED: _ClassVar[ResultCode]

class AccountStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_STATUS_UNSPECIFIED: _ClassVar[AccountStatus]
    ACTIVE: _ClassVar[AccountStatus]
    ONE_WAY_SUSPENDED: _ClassVar[AccountStatus]
    TWO_WAY_SUSPENDED: _ClassVar[AccountStatus]
    TERMINATED: _ClassVar[AccountStatus]

class Unit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNIT_UNSPECIFIED: _ClassVar[Unit]
    BYTES: _ClassVar[Unit]
    SECONDS: _ClassVar[Unit]
    EVENTS: _ClassVar[Unit]

class ExhaustionPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXHAUSTION_POLICY_UNSPECIFIED: _ClassVar[ExhaustionPolicy]
    CAP: _ClassVar[ExhaustionPolicy]
    THROTTLE: _ClassVar[ExhaustionPolicy]
    OVERAGE: _ClassVar[ExhaustionPolicy]
RESULT_CODE_UNSPECIFIED: ResultCode
SUCCESS: ResultCode
END_USER_SERVICE_DENIED: ResultCode
CREDIT_LIMIT_REACHED: ResultCode
UNKNOWN_SESSION: ResultCode
INVALID_REQUEST: ResultCode
RESOURCES_EXCEEDED: ResultCode
UNABLE_TO_COMPLY: ResultCode
USER_UNKNOWN: ResultCode
RATING_FAILED: ResultCode
ACCOUNT_STATUS_UNSPECIFIED: AccountStatus
ACTIVE: AccountStatus
ONE_WAY_SUSPENDED: AccountStatus
TWO_WAY_SUSPENDED: AccountStatus
TERMINATED: AccountStatus
UNIT_UNSPECIFIED: Unit
BYTES: Unit
SECONDS: Unit
EVENTS: Unit
EXHAUSTION_POLICY_UNSPECIFIED: ExhaustionPolicy
CAP: ExhaustionPolicy
THROTTLE: ExhaustionPolicy
OVERAGE: ExhaustionPolicy

class UnitRequest(_message.Message):
    __slots__ = ("rating_group", "requested", "used")
    RATING_GROUP_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    rating_group: int
    requested: int
    used: int
    def __init__(self, rating_group: _Optional[int] = ..., requested: _Optional[int] = ..., used: _Optional[int] = ...) -> None: ...

class ChargeRequest(_message.Message):
    __slots__ = ("session_id", "request_type", "request_number", "account_id", "gateway_id", "units")
    class RequestType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REQUEST_TYPE_UNSPECIFIED: _ClassVar[ChargeRequest.RequestType]
        INITIAL: _ClassVar[ChargeRequest.RequestType]
        UPDATE: _ClassVar[ChargeRequest.RequestType]
        TERMINATE: _ClassVar[ChargeRequest.RequestType]
        EVENT: _ClassVar[ChargeRequest.RequestType]
    REQUEST_TYPE_UNSPECIFIED: ChargeRequest.RequestType
    INITIAL: ChargeRequest.RequestType
    UPDATE: ChargeRequest.RequestType
    TERMINATE: ChargeRequest.RequestType
    EVENT: ChargeRequest.RequestType
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    request_type: ChargeRequest.RequestType
    request_number: int
    account_id: str
    gateway_id: str
    units: _containers.RepeatedCompositeFieldContainer[UnitRequest]
    def __init__(self, session_id: _Optional[str] = ..., request_type: _Optional[_Union[ChargeRequest.RequestType, str]] = ..., request_number: _Optional[int] = ..., account_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., units: _Optional[_Iterable[_Union[UnitRequest, _Mapping]]] = ...) -> None: ...

class UnitGrant(_message.Message):
    __slots__ = ("rating_group", "result", "unit", "granted", "validity_time_s", "final_unit_action", "redirect_url", "throttled", "max_bitrate_kbps", "charged")
    class FinalUnitAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[UnitGrant.FinalUnitAction]
        TERMINATE: _ClassVar[UnitGrant.FinalUnitAction]
        REDIRECT: _ClassVar[UnitGrant.FinalUnitAction]
        RESTRICT_ACCESS: _ClassVar[UnitGrant.FinalUnitAction]
    NONE: UnitGrant.FinalUnitAction
    TERMINATE: UnitGrant.FinalUnitAction
    REDIRECT: UnitGrant.FinalUnitAction
    RESTRICT_ACCESS: UnitGrant.FinalUnitAction
    RATING_GROUP_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_TIME_S_FIELD_NUMBER: _ClassVar[int]
    FINAL_UNIT_ACTION_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URL_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    MAX_BITRATE_KBPS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    rating_group: int
    result: ResultCode
    unit: Unit
    granted: int
    validity_time_s: int
    final_unit_action: UnitGrant.FinalUnitAction
    redirect_url: str
    throttled: bool
    max_bitrate_kbps: int
    charged: int
    def __init__(self, rating_group: _Optional[int] = ..., result: _Optional[_Union[ResultCode, str]] = ..., unit: _Optional[_Union[Unit, str]] = ..., granted: _Optional[int] = ..., validity_time_s: _Optional[int] = ..., final_unit_action: _Optional[_Union[UnitGrant.FinalUnitAction, str]] = ..., redirect_url: _Optional[str] = ..., throttled: _Optional[bool] = ..., max_bitrate_kbps: _Optional[int] = ..., charged: _Optional[int] = ...) -> None: ...

class ChargeAnswer(_message.Message):
    __slots__ = ("session_id", "request_number", "result", "grants", "account_status", "error")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    request_number: int
    result: ResultCode
    grants: _containers.RepeatedCompositeFieldContainer[UnitGrant]
    account_status: AccountStatus
    error: str
    def __init__(self, session_id: _Optional[str] = ..., request_number: _Optional[int] = ..., result: _Optional[_Union[ResultCode, str]] = ..., grants: _Optional[_Iterable[_Union[UnitGrant, _Mapping]]] = ..., account_status: _Optional[_Union[AccountStatus, str]] = ..., error: _Optional[str] = ...) -> None: ...

class ChargeBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ChargeRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[ChargeRequest, _Mapping]]] = ...) -> None: ...

class ChargeBatchAnswer(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[ChargeAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[ChargeAnswer, _Mapping]]] = ...) -> None: ...

class WatchNotificationsRequest(_message.Message):
    __slots__ = ("gateway_id", "from_id")
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    gateway_id: str
    from_id: str
    def __init__(self, gateway_id: _Optional[str] = ..., from_id: _Optional[str] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("kind", "session_id", "account_id", "rating_groups", "reason", "id")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Notification.Kind]
        REAUTH: _ClassVar[Notification.Kind]
        ABORT_SESSION: _ClassVar[Notification.Kind]
    KIND_UNSPECIFIED: Notification.Kind
    REAUTH: Notification.Kind
    ABORT_SESSION: Notification.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_GROUPS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    kind: Notification.Kind
    session_id: str
    account_id: str
    rating_groups: _containers.RepeatedScalarFieldContainer[int]
    reason: str
    id: str
    def __init__(self, kind: _Optional[_Union[Notification.Kind, str]] = ..., session_id: _Optional[str] = ..., account_id: _Optional[str] = ..., rating_groups: _Optional[_Iterable[int]] = ..., reason: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Contact(_message.Message):
    __slots__ = ("name", "email", "phone")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: str
    phone: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ...) -> None: ...

class Bucket(_message.Message):
    __slots__ = ("bucket_id", "unit", "remaining", "reserved", "rating_groups", "expires_at_ms", "priority", "exhaustion_policy", "amount")
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    RATING_GROUPS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXHAUSTION_POLICY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    unit: Unit
    remaining: int
    reserved: int
    rating_groups: _containers.RepeatedScalarFieldContainer[int]
    expires_at_ms: int
    priority: int
    exhaustion_policy: ExhaustionPolicy
    amount: int
    def __init__(self, bucket_id: _Optional[str] = ..., unit: _Optional[_Union[Unit, str]] = ..., remaining: _Optional[int] = ..., reserved: _Optional[int] = ..., rating_groups: _Optional[_Iterable[int]] = ..., expires_at_ms: _Optional[int] = ..., priority: _Optional[int] = ..., exhaustion_policy: _Optional[_Union[ExhaustionPolicy, str]] = ..., amount: _Optional[int] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("account_id", "plan", "initial_balance", "credit_limit", "contact", "buckets", "billing_cycle_day")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    BILLING_CYCLE_DAY_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    plan: str
    initial_balance: int
    credit_limit: int
    contact: Contact
    buckets: _containers.RepeatedCompositeFieldContainer[Bucket]
    billing_cycle_day: int
    def __init__(self, account_id: _Optional[str] = ..., plan: _Optional[str] = ..., initial_balance: _Optional[int] = ..., credit_limit: _Optional[int] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[Bucket, _Mapping]]] = ..., billing_cycle_day: _Optional[int] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("account_id", "plan", "currency", "status", "status_reason", "balance", "reserved", "available", "credit_limit", "tier", "buckets", "open_sessions", "status_since_ms", "contact", "created_at_ms", "ledger_seq", "billing_cycle_day", "credit_limit_override", "data_overage_spent", "data_overage_cap", "next_status", "next_status_at_ms")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    OPEN_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    STATUS_SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    BILLING_CYCLE_DAY_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    DATA_OVERAGE_SPENT_FIELD_NUMBER: _ClassVar[int]
    DATA_OVERAGE_CAP_FIELD_NUMBER: _ClassVar[int]
    NEXT_STATUS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STATUS_AT_MS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    plan: str
    currency: str
    status: AccountStatus
    status_reason: str
    balance: int
    reserved: int
    available: int
    credit_limit: int
    tier: str
    buckets: _containers.RepeatedCompositeFieldContainer[Bucket]
    open_sessions: int
    status_since_ms: int
    contact: Contact
    created_at_ms: int
    ledger_seq: int
    billing_cycle_day: int
    credit_limit_override: bool
    data_overage_spent: int
    data_overage_cap: int
    next_status: AccountStatus
    next_status_at_ms: int
    def __init__(self, account_id: _Optional[str] = ..., plan: _Optional[str] = ..., currency: _Optional[str] = ..., status: _Optional[_Union[AccountStatus, str]] = ..., status_reason: _Optional[str] = ..., balance: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., credit_limit: _Optional[int] = ..., tier: _Optional[str] = ..., buckets: _Optional[_Iterable[_Union[Bucket, _Mapping]]] = ..., open_sessions: _Optional[int] = ..., status_since_ms: _Optional[int] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., created_at_ms: _Optional[int] = ..., ledger_seq: _Optional[int] = ..., billing_cycle_day: _Optional[int] = ..., credit_limit_override: _Optional[bool] = ..., data_overage_spent: _Optional[int] = ..., data_overage_cap: _Optional[int] = ..., next_status: _Optional[_Union[AccountStatus, str]] = ..., next_status_at_ms: _Optional[int] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class TopUpRequest(_message.Message):
    __slots__ = ("account_id", "amount", "channel", "idempotency_key")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    amount: int
    channel: str
    idempotency_key: str
    def __init__(self, account_id: _Optional[str] = ..., amount: _Optional[int] = ..., channel: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class TopUpAnswer(_message.Message):
    __slots__ = ("account", "replayed", "ledger_seq")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    LEDGER_SEQ_FIELD_NUMBER: _ClassVar[int]
    account: Account
    replayed: bool
    ledger_seq: int
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., replayed: _Optional[bool] = ..., ledger_seq: _Optional[int] = ...) -> None: ...

class PurchaseBundleRequest(_message.Message):
    __slots__ = ("account_id", "bundle_id", "idempotency_key")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    bundle_id: str
    idempotency_key: str
    def __init__(self, account_id: _Optional[str] = ..., bundle_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SetStatusRequest(_message.Message):
    __slots__ = ("account_id", "status", "reason")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    status: AccountStatus
    reason: str
    def __init__(self, account_id: _Optional[str] = ..., status: _Optional[_Union[AccountStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetCreditLimitRequest(_message.Message):
    __slots__ = ("account_id", "credit_limit")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    credit_limit: int
    def __init__(self, account_id: _Optional[str] = ..., credit_limit: _Optional[int] = ...) -> None: ...

class ListLedgerRequest(_message.Message):
    __slots__ = ("account_id", "limit", "before_seq")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    limit: int
    before_seq: int
    def __init__(self, account_id: _Optional[str] = ..., limit: _Optional[int] = ..., before_seq: _Optional[int] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("seq", "time_ms", "kind", "amount", "balance_after", "reference", "actor")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time_ms: int
    kind: str
    amount: int
    balance_after: int
    reference: str
    actor: str
    def __init__(self, seq: _Optional[int] = ..., time_ms: _Optional[int] = ..., kind: _Optional[str] = ..., amount: _Optional[int] = ..., balance_after: _Optional[int] = ..., reference: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ListLedgerAnswer(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("from_id",)
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    from_id: str
    def __init__(self, from_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "kind", "account_id", "time_ms", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    account_id: str
    time_ms: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., account_id: _Optional[str] = ..., time_ms: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...
