"""The parts of TS 32.291's ChargingDataRequest that creditd reads, as msgspec structs named as the
specification names them (camelCase on purpose: the JSON names are the contract). Fields creditd does
not read are ignored (TS 29.501: a consumer may send any optional attribute); the types and ranges of
those it reads are checked while decoding, and a mismatch names the field as a JSON pointer."""

from __future__ import annotations

from typing import Annotated

import msgspec

Uint32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
# Up to 2^64-1 in TS 29.571; msgspec bounds only int64, and creditd bounds units by limits.max_units.
Uint64 = Annotated[int, msgspec.Meta(ge=0)]
PduSessionId = Annotated[int, msgspec.Meta(ge=0, le=255)]
Mcc = Annotated[str, msgspec.Meta(pattern=r"^\d{3}$")]
Mnc = Annotated[str, msgspec.Meta(pattern=r"^\d{2,3}$")]


class Struct(msgspec.Struct, frozen=True, kw_only=True):
    pass


class PlmnId(Struct, frozen=True):
    mcc: Mcc
    mnc: Mnc

    def digits(self) -> str:
        return self.mcc + self.mnc


class Tai(Struct, frozen=True):
    plmnId: PlmnId


class Location(Struct, frozen=True):
    """EutraLocation and NrLocation: creditd reads the tracking area's PLMN."""

    tai: Tai


class UserLocation(Struct, frozen=True):
    nrLocation: Location | None = None
    eutraLocation: Location | None = None

    def plmn(self) -> PlmnId | None:
        location = self.nrLocation or self.eutraLocation
        return location.tai.plmnId if location else None


class NFIdentification(Struct, frozen=True):
    nodeFunctionality: str
    nFName: str = ""
    nFFqdn: str = ""
    nFIPv4Address: str = ""
    nFIPv6Address: str = ""


class Trigger(Struct, frozen=True):
    triggerCategory: str
    triggerType: str = ""


class RequestedUnit(Struct, frozen=True):
    time: Uint32 | None = None
    totalVolume: Uint64 | None = None
    uplinkVolume: Uint64 | None = None
    downlinkVolume: Uint64 | None = None
    serviceSpecificUnits: Uint64 | None = None


class UsedUnitContainer(Struct, frozen=True):
    localSequenceNumber: int
    serviceId: Uint32 | None = None
    triggers: list[Trigger] = []
    time: Uint32 | None = None
    totalVolume: Uint64 | None = None
    uplinkVolume: Uint64 | None = None
    downlinkVolume: Uint64 | None = None
    serviceSpecificUnits: Uint64 | None = None


class MultipleUnitUsage(Struct, frozen=True):
    ratingGroup: Uint32
    requestedUnit: RequestedUnit | None = None
    usedUnitContainer: list[UsedUnitContainer] = []


class UserInformation(Struct, frozen=True):
    servedGPSI: str = ""


class PDUSessionInformation(Struct, frozen=True):
    pduSessionID: PduSessionId
    dnnId: str
    hPlmnId: PlmnId | None = None
    servingCNPlmnId: PlmnId | None = None


class PDUSessionChargingInformation(Struct, frozen=True):
    chargingId: Uint32 | None = None
    userInformation: UserInformation | None = None
    userLocationinfo: UserLocation | None = None
    pduSessionInformation: PDUSessionInformation | None = None


class SMAddressInfo(Struct, frozen=True):
    sMaddressData: str = ""


class RecipientInfo(Struct, frozen=True):
    recipientGPSI: str = ""
    recipientOtherAddress: SMAddressInfo | None = None


class SMSChargingInformation(Struct, frozen=True):
    recipientInfo: list[RecipientInfo] = []
    userLocationinfo: UserLocation | None = None


class IMSChargingInformation(Struct, frozen=True):
    calledPartyAddress: str = ""
    userLocationInfo: UserLocation | None = None


class ChargingDataRequest(Struct, frozen=True):
    nfConsumerIdentification: NFIdentification
    invocationTimeStamp: str
    invocationSequenceNumber: Uint32
    subscriberIdentifier: str = ""
    chargingId: Uint32 | None = None
    oneTimeEvent: bool = False
    notifyUri: str = ""
    multipleUnitUsage: list[MultipleUnitUsage] = []
    pDUSessionChargingInformation: PDUSessionChargingInformation | None = None
    sMSChargingInformation: SMSChargingInformation | None = None
    iMSChargingInformation: IMSChargingInformation | None = None


DECODER = msgspec.json.Decoder(ChargingDataRequest)


def json_pointer(path: str) -> str:
    """msgspec's `$.a[0].b` as the JSON pointer `/a/0/b` that ProblemDetails.invalidParams names."""
    pointer = path.removeprefix("$").replace("[", ".").replace("]", "")
    return "/" + "/".join(part for part in pointer.split(".") if part) if pointer else "/"


MISSING = "Object missing required field `"


def invalid_param(message: str) -> tuple[str, str]:
    """(JSON pointer, reason) of msgspec's validation message ("Expected `int` >= 0 - at `$.a[0].b`",
    "Object missing required field `x` - at `$.a`"): a missing field is named itself."""
    text, separator, path = message.rpartition(" - at `")
    if not separator:
        text, path = message, "$"
    pointer = json_pointer(path.rstrip("`"))
    if text.startswith(MISSING):
        field = text[len(MISSING) :].rstrip("`")
        pointer = pointer.rstrip("/") + "/" + field
    return pointer, text
