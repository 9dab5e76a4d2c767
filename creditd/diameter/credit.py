"""Credit control (RFC 8506, TS 32.299): a CCR becomes one creditd charge (the same core entry point and
idempotency as the gRPC Charge), and the core's answer becomes the CCA.

A retransmitted CCR (same Session-Id and CC-Request-Number, T bit or not, on any front process) reaches
the core with the same (gateway, session, request number): the core returns its stored answer and
writes nothing, so the CCA is the same and nothing is charged twice."""

from __future__ import annotations

from dataclasses import dataclass

from creditd import contract
from creditd.config.diameter import DiameterSettings
from creditd.config.limits import Limits
from creditd.diameter import identity
from creditd.diameter.codec import Avp, DiameterError, Message, integer, make, text
from creditd.diameter.dictionary import CREDIT_CONTROL_APPLICATION, Code, Result
from creditd.store.calls import ChargeSpec, UnitSpec
from creditd.store.replies import AccountRecord, AnswerRecord, GrantRecord

# The contract's rules, as at the gRPC edge (creditd/contract.py).
ID_PATTERN = contract.ID.regex()
SESSION_ID_PATTERN = contract.SESSION_ID.regex()

INITIAL, UPDATE, TERMINATE, EVENT = 1, 2, 3, 4
DIRECT_DEBITING, CHECK_BALANCE = 0, 2
ENOUGH_CREDIT, NO_CREDIT = 0, 1
ACTIVE = 1
GY_CONTEXT, RO_CONTEXT, SMS_CONTEXT = "32251@3gpp.org", "32260@3gpp.org", "32274@3gpp.org"
BYTES, SECONDS, EVENTS = 1, 2, 3
TARIFF_CHANGE_AFTER = 1
FAILURE_HANDLING_RETRY_AND_TERMINATE = 2
SESSION_FAILOVER_SUPPORTED = 1
REDIRECT_ADDRESS_URL = 2
NTP_OFFSET_S = 2_208_988_800


@dataclass(frozen=True, slots=True)
class Ask:
    """A checked CCR: the charge for the core, and how to spell its answer."""

    charge: ChargeSpec
    request_type: int
    request_number: int
    # creditd rating group -> (Rating-Group, Service-Identifier) as the client sent them
    wire_groups: dict[int, tuple[int, int]]


def _units(avp: Avp | None) -> int:
    if avp is None or not isinstance(avp.value, list):
        return 0
    for code in (Code.CC_TIME, Code.CC_TOTAL_OCTETS, Code.CC_SERVICE_SPECIFIC_UNITS):
        child = avp.child(code)
        if child is not None:
            return integer(child, code.name)
    input_octets, output_octets = avp.child(Code.CC_INPUT_OCTETS), avp.child(Code.CC_OUTPUT_OCTETS)
    return sum(integer(part, "CC_OCTETS") for part in (input_octets, output_octets) if part is not None)


def _unit(mscc: Avp, settings: DiameterSettings, voice: bool, limits: Limits) -> tuple[UnitSpec, int, int]:
    rating_group_avp, service_avp = mscc.child(Code.RATING_GROUP), mscc.child(Code.SERVICE_IDENTIFIER)
    if rating_group_avp is None and not voice:
        raise DiameterError(Result.MISSING_AVP, "Rating-Group: required in each MSCC on Gy", make(Code.RATING_GROUP, 0))
    wire_group = integer(rating_group_avp, "RATING_GROUP") if rating_group_avp else 0
    service_id = integer(service_avp, "SERVICE_IDENTIFIER") if service_avp else 0
    if rating_group_avp is None:
        rating_group = settings.voice_rating_group
    else:
        rating_group = settings.rating_groups.get(str(wire_group), wire_group)
    used = after_change = 0
    for usage in mscc.children(Code.USED_SERVICE_UNIT):
        amount = _units(usage)
        used += amount
        change = usage.child(Code.TARIFF_CHANGE_USAGE)
        if change is not None and change.value == TARIFF_CHANGE_AFTER:
            after_change += amount
    requested = _units(mscc.child(Code.REQUESTED_SERVICE_UNIT))
    for amount in (requested, used):
        if amount > limits.max_units:
            raise DiameterError(Result.INVALID_AVP_VALUE, f"units: over {limits.max_units}", mscc)
    unit = UnitSpec(rating_group, requested, used, service_id, after_change)
    return unit, wire_group, service_id


def _request_type(request: Message) -> int:
    request_type = integer(request.first(Code.CC_REQUEST_TYPE), "CC_REQUEST_TYPE")
    if request_type not in (INITIAL, UPDATE, TERMINATE, EVENT):
        raise DiameterError(
            Result.INVALID_AVP_VALUE, f"CC-Request-Type {request_type}", request.first(Code.CC_REQUEST_TYPE)
        )
    if request_type == EVENT:
        action = request.first(Code.REQUESTED_ACTION)
        if action is not None and action.value not in (DIRECT_DEBITING, CHECK_BALANCE):
            raise DiameterError(Result.INVALID_AVP_VALUE, "Requested-Action: DIRECT_DEBITING or CHECK_BALANCE", action)
    return request_type


def is_balance_check(request: Message) -> bool:
    action = request.first(Code.REQUESTED_ACTION)
    return action is not None and action.value == CHECK_BALANCE


def _service(request: Message) -> bool:
    """True for voice (Ro), False for Gy data and SMS; other contexts are refused."""
    context = text(request.first(Code.SERVICE_CONTEXT_ID))
    if context.endswith(RO_CONTEXT):
        return True
    if context.endswith((GY_CONTEXT, SMS_CONTEXT)):
        return False
    failed = request.first(Code.SERVICE_CONTEXT_ID) or make(Code.SERVICE_CONTEXT_ID, "")
    raise DiameterError(Result.INVALID_AVP_VALUE, f"Service-Context-Id {context!r}: not Gy, Ro or SMS", failed)


def _session_id(request: Message, limits: Limits) -> str:
    avp = request.first(Code.SESSION_ID)
    session_id = text(avp)
    if avp is None:
        raise DiameterError(Result.MISSING_AVP, "Session-Id: missing", make(Code.SESSION_ID, ""))
    if len(session_id) > limits.max_session_id_length or not SESSION_ID_PATTERN.fullmatch(session_id):
        raise DiameterError(Result.INVALID_AVP_VALUE, "Session-Id: printable ASCII, no spaces or braces", avp)
    return session_id


def ask(request: Message, gateway_id: str, settings: DiameterSettings, limits: Limits) -> Ask:
    """The charge a CCR stands for; raises DiameterError (answered with its code and Failed-AVP)."""
    session_id = _session_id(request, limits)
    request_type = _request_type(request)
    request_number = integer(request.first(Code.CC_REQUEST_NUMBER), "CC_REQUEST_NUMBER")
    voice = _service(request)
    account_id, account_avp = identity.account_id(request, settings.country_code)
    if not ID_PATTERN.fullmatch(account_id):
        raise DiameterError(Result.USER_UNKNOWN, f"subscriber {account_id!r}: no such account id", account_avp)
    called_party, _ = identity.called_party(request, voice, settings.country_code)
    if len(called_party) > 15:
        raise DiameterError(Result.INVALID_AVP_VALUE, "called party: at most 15 digits", None)
    visited_plmn, _ = identity.visited_plmn(request)
    msccs = request.all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    if len(msccs) > limits.max_units_per_request:
        raise DiameterError(Result.INVALID_AVP_VALUE, f"MSCC: at most {limits.max_units_per_request}", msccs[-1])
    units: list[UnitSpec] = []
    wire_groups: dict[int, tuple[int, int]] = {}
    for mscc in msccs:
        unit, wire_group, service_id = _unit(mscc, settings, voice, limits)
        if unit.rating_group in wire_groups:
            raise DiameterError(Result.INVALID_AVP_VALUE, "MSCC: a rating group appears twice", mscc)
        if unit.used and request_type in (INITIAL, EVENT):
            raise DiameterError(Result.INVALID_AVP_VALUE, "Used-Service-Unit: not in an initial or event CCR", mscc)
        if request_type == TERMINATE:
            unit = UnitSpec(unit.rating_group, 0, unit.used, unit.service_id, unit.used_after_tariff_change)
        units.append(unit)
        wire_groups[unit.rating_group] = (wire_group, service_id)
    charge = ChargeSpec(
        session_id, request_type, request_number, account_id, gateway_id, units, called_party, visited_plmn
    )
    return Ask(charge, request_type, request_number, wire_groups)


# ---------------------------------------------------------------------------------------------- answer


def _granted(grant: GrantRecord, margin_s: int) -> Avp:
    amount = grant.granted
    if grant.unit == SECONDS:
        if grant.final_unit_action:
            amount = max(amount - margin_s, 0)
        return make(Code.GRANTED_SERVICE_UNIT, [make(Code.CC_TIME, amount)])
    if grant.unit == BYTES:
        return make(Code.GRANTED_SERVICE_UNIT, [make(Code.CC_TOTAL_OCTETS, amount)])
    return make(Code.GRANTED_SERVICE_UNIT, [make(Code.CC_SERVICE_SPECIFIC_UNITS, amount)])


def _final_unit(grant: GrantRecord) -> Avp:
    children = [make(Code.FINAL_UNIT_ACTION, grant.final_unit_action - 1)]  # TERMINATE 0, REDIRECT 1, RESTRICT 2
    if grant.redirect_url:
        address = [
            make(Code.REDIRECT_ADDRESS_TYPE, REDIRECT_ADDRESS_URL),
            make(Code.REDIRECT_SERVER_ADDRESS, grant.redirect_url),
        ]
        children.append(make(Code.REDIRECT_SERVER, address))
    return make(Code.FINAL_UNIT_INDICATION, children)


def _mscc(grant: GrantRecord, ask_: Ask, margin_s: int) -> Avp:
    wire_group, service_id = ask_.wire_groups.get(grant.rating_group, (grant.rating_group, 0))
    children: list[Avp] = []
    if grant.granted or grant.final_unit_action:
        children.append(_granted(grant, margin_s))
    if service_id:
        children.append(make(Code.SERVICE_IDENTIFIER, service_id))
    if wire_group:
        children.append(make(Code.RATING_GROUP, wire_group))
    children.append(make(Code.RESULT_CODE, grant.result))
    if grant.validity_time_s:
        children.append(make(Code.VALIDITY_TIME, grant.validity_time_s))
    if grant.final_unit_action:
        children.append(_final_unit(grant))
    if grant.quota_threshold:
        threshold = Code.TIME_QUOTA_THRESHOLD if grant.unit == SECONDS else Code.VOLUME_QUOTA_THRESHOLD
        if grant.unit in (SECONDS, BYTES):
            children.append(make(threshold, min(grant.quota_threshold, 2**32 - 1)))
    if grant.quota_holding_time_s:
        children.append(make(Code.QUOTA_HOLDING_TIME, grant.quota_holding_time_s))
    if grant.tariff_time_change_ms:
        children.append(make(Code.TARIFF_TIME_CHANGE, grant.tariff_time_change_ms // 1000 + NTP_OFFSET_S))
    return make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def base_answer(request: Message, settings: DiameterSettings, result: int) -> list[Avp]:
    session = request.first(Code.SESSION_ID)
    head = [session] if session is not None else []
    return [
        *head,
        make(Code.RESULT_CODE, result),
        make(Code.ORIGIN_HOST, settings.origin_host),
        make(Code.ORIGIN_REALM, settings.origin_realm),
    ]


def credit_answer(request: Message, ask_: Ask, answer: AnswerRecord, settings: DiameterSettings) -> Message:
    avps = base_answer(request, settings, answer.result)
    avps += [
        make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION),
        make(Code.CC_REQUEST_TYPE, ask_.request_type),
        make(Code.CC_REQUEST_NUMBER, ask_.request_number),
    ]
    if answer.error:
        avps.append(make(Code.ERROR_MESSAGE, answer.error[:200]))
    avps += [_mscc(grant, ask_, settings.final_grant_margin_s) for grant in answer.grants]
    if ask_.request_type != TERMINATE:
        avps += [
            make(Code.CREDIT_CONTROL_FAILURE_HANDLING, FAILURE_HANDLING_RETRY_AND_TERMINATE),
            make(Code.CC_SESSION_FAILOVER, SESSION_FAILOVER_SUPPORTED),
        ]
    return request.answer(avps)


def refusal(request: Message, settings: DiameterSettings, error: DiameterError) -> Message:
    """The answer to a message we refuse: E bit for protocol errors (3xxx), Failed-AVP when known."""
    avps = base_answer(request, settings, error.result)
    if request.command == 272:
        avps.append(make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION))
        for code in (Code.CC_REQUEST_TYPE, Code.CC_REQUEST_NUMBER):
            found = request.first(code)
            if found is not None and isinstance(found.value, int):
                avps.append(found)
    avps.append(make(Code.ERROR_MESSAGE, error.message[:200]))
    if error.failed is not None:
        avps.append(make(Code.FAILED_AVP, [error.failed]))
    return request.answer(avps, error=3000 <= error.result < 4000)


def balance_answer(request: Message, ask_: Ask, account: AccountRecord, settings: DiameterSettings) -> Message:
    """CHECK_BALANCE (RFC 8506 §5.6.2): whether the account could pay now; nothing reserved or debited."""
    available = account.balance - account.reserved + account.credit_limit
    enough = account.status == ACTIVE and available > 0
    avps = base_answer(request, settings, Result.SUCCESS)
    avps += [
        make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION),
        make(Code.CC_REQUEST_TYPE, ask_.request_type),
        make(Code.CC_REQUEST_NUMBER, ask_.request_number),
        make(Code.CHECK_BALANCE_RESULT, ENOUGH_CREDIT if enough else NO_CREDIT),
    ]
    return request.answer(avps)
