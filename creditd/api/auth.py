"""Who may call what. With mutual TLS a caller's identity is its certificate's common name or one of
its DNS subject alternative names, and the config maps identities to roles; every RPC checks its
role before it touches Redis. Without TLS (loopback development only) every caller is admin.

    gateway  CreditControl (Charge, ChargeBatch, WatchNotifications)
    topup    TopUp, GetAccount, TopUpGroup
    crm      GetAccount, ListLedger, WatchEvents, WatchUsage, Adjust, SetPreferences, Borrow, GetGroup
    care     the care console's: GetAccount, ListLedger, Adjust, PurchaseBundle (a gift), SetStatus, SetPlan
    portal   SelfService (a subscriber's own account, through their session token)
    admin    everything
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from creditd import metrics
from creditd.api.context import Context
from creditd.config.settings import Role
from creditd.errors import PermissionDenied

log = logging.getLogger(__name__)

ROLES = ("gateway", "topup", "crm", "care", "portal", "admin")
SELF_SERVICE_METHODS = frozenset(
    {
        "RequestSignInCode",
        "SignIn",
        "SignOut",
        "GetMyAccount",
        "ListMyLedger",
        "GetMyUsage",
        "ListMyBundles",
        "PurchaseMyBundle",
        "RedeemVoucher",
        "SetMyPreferences",
        "ListMyLoanOffers",
        "BorrowMyCredit",
    }
)
ALL_METHODS = frozenset(
    {
        "Charge",
        "ChargeBatch",
        "WatchNotifications",
        "CreateAccount",
        "GetAccount",
        "TopUp",
        "PurchaseBundle",
        "SetStatus",
        "SetCreditLimit",
        "SetPlan",
        "ListLedger",
        "WatchEvents",
        "WatchUsage",
        "Adjust",
        "SetPreferences",
        "Borrow",
        "CreateGroup",
        "TopUpGroup",
        "SetGroupMember",
        "RemoveGroupMember",
        "GetGroup",
    }
    | SELF_SERVICE_METHODS
)
METHODS_OF_ROLE: dict[str, frozenset[str]] = {
    "gateway": frozenset({"Charge", "ChargeBatch", "WatchNotifications"}),
    "topup": frozenset({"TopUp", "GetAccount", "TopUpGroup"}),
    "crm": frozenset(
        {"GetAccount", "ListLedger", "WatchEvents", "WatchUsage", "Adjust", "SetPreferences", "Borrow", "GetGroup"}
    ),
    "care": frozenset({"GetAccount", "ListLedger", "Adjust", "PurchaseBundle", "SetStatus", "SetPlan"}),
    "portal": SELF_SERVICE_METHODS,
    "admin": ALL_METHODS,
}
LOCAL_IDENTITY = "local"


def _names(context: Context) -> list[str]:
    auth = context.auth_context() or {}
    found = []
    for property_name in ("x509_common_name", "x509_subject_alternative_name"):
        found += [value.decode(errors="replace") for value in auth.get(property_name, [])]
    return found


class Authorizer:
    def __init__(self, roles: Mapping[Role, Sequence[str]], tls: bool) -> None:
        self._tls = tls
        self._role_of: dict[str, str] = {}
        for role, identities in roles.items():
            for identity in identities:
                self._role_of[identity] = role

    def caller(self, context: Context) -> tuple[str, str]:
        """The caller's identity and role; PermissionDenied when its certificate maps to none."""
        if not self._tls:
            return LOCAL_IDENTITY, "admin"
        names = _names(context)
        for name in names:
            role = self._role_of.get(name)
            if role is not None:
                return name, role
        raise PermissionDenied(f"caller: no role for certificate names {', '.join(names) or '(none)'}")

    def check(self, context: Context, method: str) -> str:
        """Returns the caller's identity when its role allows method; else PermissionDenied."""
        try:
            identity, role = self.caller(context)
        except PermissionDenied as error:
            metrics.PERMISSION_DENIED.labels(method).inc()
            log.warning("%s denied: %s", method, error.message)
            raise
        if method not in METHODS_OF_ROLE[role]:
            metrics.PERMISSION_DENIED.labels(method).inc()
            log.warning("%s denied to %s (role %s)", method, identity, role)
            raise PermissionDenied(f"caller: role {role} may not call {method}")
        return identity
