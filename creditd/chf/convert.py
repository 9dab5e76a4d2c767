"""ChargingDataRequest -> one creditd charge (store/calls.ChargeSpec), and creditd's answer ->
ChargingDataResponse. No balance logic: the Lua function `charge` decides; this only renames.

- The ChargingDataRef is `<account id>~<24 hex digits>`: the account (so that any chf process serves
  an update or release without a lookup) and a digest of what identifies the create (the consumer NF,
  the subscriber, the charging id, the PDU session and the invocation time stamp), so that a create
  sent again, to this process or another, names the same session and gets the stored answer.
- creditd's (gateway, session, request number) is (chf.gateway_id, ChargingDataRef,
  invocationSequenceNumber): a request repeated with the same ref and number gets the same answer
  and charges nothing; a lower number is refused.
- Units: a rating group counts BYTES, SECONDS or EVENTS (its tariffs' unit in the plans); a
  requestedUnit or usedUnitContainer is read in that unit: totalVolume (else uplink + downlink),
  time, serviceSpecificUnits. A rating group no plan prices is read in the first unit present.
- Tariff time change: the SMF closes the container in force at the change with the trigger
  TARIFF_TIME_CHANGE (TS 32.255); the containers after the last such one (by localSequenceNumber)
  are the usage after the change.
"""

from __future__ import annotations

import enum
import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from creditd.chf import model
from creditd.chf.identity import account_of_subscriber
from creditd.chf.problems import Problem, invalid
from creditd.config.settings import Settings
from creditd.store.calls import ChargeSpec, UnitSpec
from creditd.store.codes import Code, FinalUnitAction, RequestType, Unit
from creditd.store.replies import AnswerRecord, GrantRecord

REF_SEPARATOR = "~"
REF_DIGEST_HEX = 24
TARIFF_TIME_CHANGE = "TARIFF_TIME_CHANGE"


class Operation(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    RELEASE = "release"


RESULT_CODES = {
    Code.SUCCESS: "SUCCESS",
    Code.END_USER_SERVICE_DENIED: "END_USER_SERVICE_DENIED",
    Code.CREDIT_LIMIT_REACHED: "QUOTA_LIMIT_REACHED",
    Code.RATING_FAILED: "RATING_FAILED",
    Code.USER_UNKNOWN: "USER_UNKNOWN",
}
FINAL_UNIT_ACTIONS = {
    FinalUnitAction.TERMINATE: "TERMINATE",
    FinalUnitAction.REDIRECT: "REDIRECT",
    FinalUnitAction.RESTRICT_ACCESS: "RESTRICT_ACCESS",
}
# The grant's unit -> (GrantedUnit field, MultipleUnitInformation threshold field).
GRANT_FIELDS = {
    Unit.BYTES: ("totalVolume", "volumeQuotaThreshold"),
    Unit.SECONDS: ("time", "timeQuotaThreshold"),
    Unit.EVENTS: ("serviceSpecificUnits", "unitQuotaThreshold"),
}


def rating_group_units(settings: Settings) -> dict[int, Unit]:
    """Each rating group's unit across the plans; a group counted in different units by different
    plans is left out (read in the first unit present)."""
    seen: dict[int, set[str]] = {}
    for plan in settings.plans.values():
        for tariff in plan.tariffs:
            seen.setdefault(tariff.rating_group, set()).add(tariff.unit)
    return {group: Unit[next(iter(units))] for group, units in seen.items() if len(units) == 1}


def units_in(amounts: model.RequestedUnit | model.UsedUnitContainer, unit: Unit | None) -> int:
    volume = amounts.totalVolume
    if volume is None and (amounts.uplinkVolume is not None or amounts.downlinkVolume is not None):
        volume = (amounts.uplinkVolume or 0) + (amounts.downlinkVolume or 0)
    by_unit = {Unit.BYTES: volume, Unit.SECONDS: amounts.time, Unit.EVENTS: amounts.serviceSpecificUnits}
    if unit is not None:
        return by_unit.get(unit) or 0
    return next((value for value in (volume, amounts.serviceSpecificUnits, amounts.time) if value is not None), 0)


def ref_of(request: model.ChargingDataRequest, account_id: str) -> str:
    nf = request.nfConsumerIdentification
    pdu = request.pDUSessionChargingInformation
    session = pdu.pduSessionInformation if pdu else None
    parts = (
        nf.nodeFunctionality,
        nf.nFName,
        nf.nFFqdn,
        nf.nFIPv4Address,
        nf.nFIPv6Address,
        request.subscriberIdentifier,
        str(request.chargingId),
        str(pdu.chargingId if pdu else None),
        str(session.pduSessionID if session else None),
        request.invocationTimeStamp,
    )
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:REF_DIGEST_HEX]
    return f"{account_id}{REF_SEPARATOR}{digest}"


def account_of_ref(ref: str) -> str | None:
    account_id, separator, digest = ref.rpartition(REF_SEPARATOR)
    if not separator or len(digest) != REF_DIGEST_HEX or not account_id:
        return None
    if any(character not in "0123456789abcdef" for character in digest):
        return None
    return account_id


def account_of_request(request: model.ChargingDataRequest) -> str:
    pdu = request.pDUSessionChargingInformation
    gpsi = pdu.userInformation.servedGPSI if pdu and pdu.userInformation else ""
    if not request.subscriberIdentifier and not gpsi:
        raise invalid("/subscriberIdentifier", "required: the SUPI (or a servedGPSI) names the account to charge")
    account_id = account_of_subscriber(request.subscriberIdentifier, gpsi)
    if account_id is None:
        raise Problem(404, "USER_UNKNOWN", "subscriberIdentifier: only imsi-<digits> and msisdn-<digits> name accounts")
    return account_id


# RFC 3339 date-time (OpenAPI's format date-time), any number of second fractions, leap second 60.
DATE_TIME = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
    r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)


def check_time_stamp(value: str) -> None:
    if not DATE_TIME.fullmatch(value):
        raise invalid("/invocationTimeStamp", "must be a date-time (RFC 3339)")


def _digits(address: str, param: str) -> str:
    number = address
    for scheme in ("tel:", "sip:", "sips:", "msisdn-"):
        number = number.removeprefix(scheme)
    number = number.split("@", 1)[0].split(";", 1)[0].removeprefix("+")
    if not number.isascii() or not number.isdigit() or len(number) > 15:
        raise invalid(param, "must be an E.164 number: at most 15 digits (tel:, sip:, + allowed)")
    return number


def called_party_of(request: model.ChargingDataRequest) -> str:
    ims = request.iMSChargingInformation
    if ims and ims.calledPartyAddress:
        return _digits(ims.calledPartyAddress, "/iMSChargingInformation/calledPartyAddress")
    sms = request.sMSChargingInformation
    if sms and sms.recipientInfo:
        recipient = sms.recipientInfo[0]
        if recipient.recipientGPSI:
            return _digits(recipient.recipientGPSI, "/sMSChargingInformation/recipientInfo/0/recipientGPSI")
        if recipient.recipientOtherAddress and recipient.recipientOtherAddress.sMaddressData:
            param = "/sMSChargingInformation/recipientInfo/0/recipientOtherAddress/sMaddressData"
            return _digits(recipient.recipientOtherAddress.sMaddressData, param)
    return ""


def visited_plmn_of(request: model.ChargingDataRequest) -> str:
    """The serving network: the SMF's servingCNPlmnId, else the PLMN of the user's tracking area;
    '' for the home network (hPlmnId)."""
    pdu, sms, ims = (
        request.pDUSessionChargingInformation,
        request.sMSChargingInformation,
        request.iMSChargingInformation,
    )
    session = pdu.pduSessionInformation if pdu else None
    serving = session.servingCNPlmnId if session else None
    for location in (pdu and pdu.userLocationinfo, sms and sms.userLocationinfo, ims and ims.userLocationInfo):
        if serving is None and location:
            serving = location.plmn()
    if serving is None or (session and session.hPlmnId and session.hPlmnId.digits() == serving.digits()):
        return ""
    return serving.digits()


def _used(usage: model.MultipleUnitUsage, index: int, unit: Unit | None) -> tuple[int, int, int]:
    """(used, used after a tariff change, service id) of one rating group's containers."""
    containers = sorted(usage.usedUnitContainer, key=lambda container: container.localSequenceNumber)
    service_ids = {container.serviceId for container in containers if container.serviceId is not None}
    if len(service_ids) > 1:
        raise invalid(f"/multipleUnitUsage/{index}/usedUnitContainer", "one serviceId per rating group")
    amounts = [units_in(container, unit) for container in containers]
    last_change = max(
        (
            i
            for i, container in enumerate(containers)
            if any(t.triggerType == TARIFF_TIME_CHANGE for t in container.triggers)
        ),
        default=-1,
    )
    after = sum(amounts[last_change + 1 :]) if last_change >= 0 else 0
    return sum(amounts), after, service_ids.pop() if service_ids else 0


def request_type_of(request: model.ChargingDataRequest, operation: Operation) -> RequestType:
    if operation is Operation.CREATE:
        return RequestType.EVENT if request.oneTimeEvent else RequestType.INITIAL
    return RequestType.UPDATE if operation is Operation.UPDATE else RequestType.TERMINATE


def charge_spec(
    request: model.ChargingDataRequest,
    operation: Operation,
    account_id: str,
    ref: str,
    gateway_id: str,
    units: dict[int, Unit],
    max_units: int,
) -> ChargeSpec:
    check_time_stamp(request.invocationTimeStamp)
    request_type = request_type_of(request, operation)
    specs = []
    for index, usage in enumerate(request.multipleUnitUsage):
        unit = units.get(usage.ratingGroup)
        used, after, service_id = _used(usage, index, unit)
        requested = 0
        if usage.requestedUnit is not None and request_type is not RequestType.TERMINATE:
            requested = units_in(usage.requestedUnit, unit)
        for value, field in ((requested, "requestedUnit"), (used, "usedUnitContainer")):
            if value > max_units:
                raise invalid(f"/multipleUnitUsage/{index}/{field}", f"at most {max_units} units")
        specs.append(UnitSpec(usage.ratingGroup, requested, used, service_id, after))
    return ChargeSpec(
        session_id=ref,
        request_type=int(request_type),
        request_number=request.invocationSequenceNumber,
        account_id=account_id,
        gateway_id=gateway_id,
        units=specs,
        called_party=called_party_of(request),
        visited_plmn=visited_plmn_of(request),
    )


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def unit_information(grant: GrantRecord) -> dict[str, Any]:
    information: dict[str, Any] = {
        "resultCode": RESULT_CODES.get(Code(grant.result), "END_USER_SERVICE_REJECTED")
        if grant.result in Code._value2member_map_
        else "END_USER_SERVICE_REJECTED",
        "ratingGroup": grant.rating_group,
    }
    fields = GRANT_FIELDS.get(Unit(grant.unit)) if grant.unit in Unit._value2member_map_ else None
    if grant.result != Code.SUCCESS or fields is None:
        return information
    granted_field, threshold_field = fields
    granted: dict[str, Any] = {granted_field: grant.granted}
    if grant.tariff_time_change_ms:
        granted["tariffTimeChange"] = _time(grant.tariff_time_change_ms)
        information["triggers"] = [{"triggerType": TARIFF_TIME_CHANGE, "triggerCategory": "DEFERRED_REPORT"}]
    information["grantedUnit"] = granted
    information["validityTime"] = grant.validity_time_s
    if grant.quota_holding_time_s:
        information["quotaHoldingTime"] = grant.quota_holding_time_s
    if grant.quota_threshold:
        information[threshold_field] = grant.quota_threshold
    action = FINAL_UNIT_ACTIONS.get(FinalUnitAction(grant.final_unit_action)) if grant.final_unit_action else None
    if action:
        final: dict[str, Any] = {"finalUnitAction": action}
        if grant.redirect_url:
            final["redirectServer"] = {"redirectAddressType": "URL", "redirectServerAddress": grant.redirect_url}
        information["finalUnitIndication"] = final
    return information


def response_of(request: model.ChargingDataRequest, answer: AnswerRecord) -> dict[str, Any]:
    """The ChargingDataResponse. It carries the request's invocationTimeStamp, so that a repeated
    request gets the same body as the first."""
    response: dict[str, Any] = {
        "invocationTimeStamp": request.invocationTimeStamp,
        "invocationSequenceNumber": request.invocationSequenceNumber,
    }
    if answer.grants:
        response["multipleUnitInformation"] = [unit_information(grant) for grant in answer.grants]
    return response


# A whole request refused by creditd's result -> (status, TS 32.291 / TS 29.500 cause, what it means).
REFUSALS = {
    Code.CREDIT_LIMIT_REACHED: (403, "QUOTA_LIMIT_REACHED", "the account's money pays not one unit"),
    Code.END_USER_SERVICE_DENIED: (403, "END_USER_REQUEST_DENIED", "the account's status denies the service"),
    Code.RESOURCES_EXCEEDED: (403, "END_USER_REQUEST_REJECTED", "the account has too many open sessions"),
    Code.USER_UNKNOWN: (404, "USER_UNKNOWN", "no such account"),
    Code.UNKNOWN_SESSION: (404, "RESOURCE_NOT_FOUND", "no such charging data resource"),
    Code.RATING_FAILED: (400, "CHARGING_FAILED", "no tariff prices the units"),
    Code.INVALID_REQUEST: (400, "CHARGING_FAILED", "invalid request"),
}
# creditd's field names in a refusal -> the request's JSON pointer.
FIELDS = {
    "request_number": "/invocationSequenceNumber",
    "session_id": "{ChargingDataRef}",
    "account_id": "/subscriberIdentifier",
    "called_party": "/iMSChargingInformation/calledPartyAddress",
    "visited_plmn": "/pDUSessionChargingInformation/userLocationinfo",
}


def refusal(answer: AnswerRecord) -> Problem:
    status, cause, meaning = REFUSALS.get(Code(answer.result), (403, "END_USER_REQUEST_REJECTED", "refused"))
    field = answer.error.split(":", 1)[0]
    param = ""
    if status == 400:
        param = FIELDS.get(field, "")
        if field.startswith("units["):
            index = field[len("units[") :].split("]", 1)[0]
            param = f"/multipleUnitUsage/{index}"
    return Problem(status, cause, answer.error or meaning, param)
