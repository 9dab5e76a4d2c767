"""Which creditd account a 5G (or Diameter) subscriber identity charges: the one rule, written once.

creditd keys accounts by the subscriber's number as digits (e.g. 66812345678). An identity maps to an
account id by its digits:

    msisdn-<5..15 digits>  (GPSI, TS 29.571; Diameter Subscription-Id END_USER_E164)  -> <digits>
    imsi-<5..15 digits>    (SUPI, TS 29.571; Diameter Subscription-Id END_USER_IMSI)  -> <digits>

so an operator keying accounts by MSISDN charges by GPSI, and one keying them by IMSI by SUPI. When a
request carries both, the GPSI wins (creditd's accounts are MSISDN-keyed by default). Any other form
(nai-, extid-, gci-, gli-) maps to no account: the caller answers USER_UNKNOWN.
"""

from __future__ import annotations

import re

IDENTITY = re.compile(r"(msisdn|imsi)-([0-9]{5,15})")


def account_of(identity: str) -> str | None:
    """The account id of one identity (GPSI msisdn-..., SUPI imsi-...), None when it has no such form."""
    match = IDENTITY.fullmatch(identity)
    return match.group(2) if match else None


def account_of_subscriber(supi: str, gpsi: str) -> str | None:
    """The account of a request naming a SUPI, a GPSI or both (either may be ''): the GPSI's first."""
    for identity in (gpsi, supi):
        if identity:
            account_id = account_of(identity)
            if account_id is not None:
                return account_id
    return None
