"""The vocabulary of the settings tables: their base struct, named limits of the configuration's sizes,
and the constrained types (names, amounts, PLMNs, clock times) that every settings module shares."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from creditd.contract import ID, MAX_EXACT_INTEGER


class Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The base of every settings table: frozen, and a misspelt option is an error, not a default."""


DEFAULT_PARTITIONS = 256
MAX_CREDIT_TIERS = 16
MAX_PLAN_CHANGES = 32
MAX_PLAN_CHANGE_ACCOUNTS = 10_000
MAX_TARIFFS_PER_PLAN = 256
MAX_DESTINATIONS = 4096
MAX_ZONES = 1024
MAX_TIMINGS = 256
MAX_TIMING_DATES = 1_000
MAX_TOPUP_BONUSES = 16
MAX_BONUS_INSTALMENTS = 24

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_EXACT_INTEGER)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_EXACT_INTEGER)]
Name = Annotated[str, msgspec.Meta(pattern=f"^{ID.regex().pattern}$")]
# E.164: at most 15 digits; a destination prefix is a leading part of one.
Prefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,15}$")]
# MCC + MNC.
Plmn = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5,6}$")]
# "HH:MM" local time; "24:00" only as a band's end.
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RatingNames = Annotated[list[Name], msgspec.Meta(max_length=64)]
