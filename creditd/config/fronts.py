"""The settings of the front ends beside the gRPC server: the notifier's channels and the portal,
and the vocabulary they share with the plans (languages, notice kinds, channels). Part of the
configuration (config/settings.py reads them as its [notifications] and [portal] tables)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Annotated, Literal

import msgspec

from creditd.config.types import Struct
from creditd.contract import ID
from creditd.errors import ConfigError

# Languages subscriber notices are written in (config/templates/<language>/ when the notifier sends).
Language = Literal["en", "th", "ru", "zh"]
LANGUAGES: tuple[str, ...] = ("en", "th", "ru", "zh")
# The event kinds a subscriber is told about (creditd/notifier/templates.py has a template of each):
# service notices, always sent; marketing ones only with the subscriber's opt-in.
SERVICE_NOTICE_KINDS: tuple[str, ...] = (
    "low_balance",
    "suspension_coming",
    "suspended_one_way",
    "suspended_two_way",
    "resumed",
    "terminated",
    "topup",
    "loan_granted",
    "bundle_purchased",
    "bundle_nearly_used",
    "bundle_used_up",
    "bundle_expired",
    "bonus_granted",
    "bonus_expired",
    "data_overage_cap_reached",
    "sign_in_code",  # queued by the self-service sign-in, not from the event feed
)
MARKETING_NOTICE_KINDS: tuple[str, ...] = ("offer",)
Channel = Literal["sms", "email", "webhook"]
CHANNELS: tuple[str, ...] = ("sms", "email", "webhook")


Url = Annotated[str, msgspec.Meta(pattern=r"^$|^https?://[^\s]{1,1000}$")]


class SmsChannelSettings(Struct, frozen=True):
    """An SMS gateway's HTTP send API in the form of Kannel's sendsms (smsbox's sendsms-port)."""

    url: Url = ""
    username: Annotated[str, msgspec.Meta(max_length=128)] = ""
    password: Annotated[str, msgspec.Meta(max_length=128)] = ""
    sender: Annotated[str, msgspec.Meta(max_length=32)] = ""
    # Delivery reports: Kannel calls it with %d (the report type) etc.; empty: none asked.
    dlr_url: Url = ""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0


class EmailChannelSettings(Struct, frozen=True):
    host: Annotated[str, msgspec.Meta(max_length=255)] = ""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    starttls: bool = True
    username: Annotated[str, msgspec.Meta(max_length=255)] = ""
    password: Annotated[str, msgspec.Meta(max_length=255)] = ""
    sender: Annotated[str, msgspec.Meta(max_length=255)] = ""
    # PEM bundle the server's certificate must chain to; empty: the system's.
    ca_path: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0


class WebhookChannelSettings(Struct, frozen=True):
    url: Url = ""
    # Signs each body (HMAC-SHA256 of '<timestamp>.<body>'), header Creditd-Signature.
    secret: Annotated[str, msgspec.Meta(max_length=256)] = ""
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0


def check_webhook(webhook: WebhookChannelSettings) -> None:
    """A webhook is signed (receivers can tell our posts from forgeries) and, off loopback, sent over
    https (the body names subscribers and their money)."""
    if not webhook.url:
        return
    if not webhook.secret:
        raise ConfigError("notifications.webhook.secret: required with a url (receivers verify the signature)")
    host = (urllib.parse.urlsplit(webhook.url).hostname or "").strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not webhook.url.lower().startswith("https://") and not loopback:
        raise ConfigError("notifications.webhook.url: https:// is required off loopback")


class NotificationSettings(Struct, frozen=True):
    # config/templates/<language>/<kind>.txt (creditd/notifier/templates.py); relative paths start at
    # the config file's directory.
    templates_dir: Annotated[str, msgspec.Meta(max_length=1024)] = "templates"
    # No second notice of one kind to one account within this (no three low-balance texts in ten minutes).
    min_interval_s: Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)] = 600
    # A delivery an outage keeps failing is tried this often, backing off from retry_base_s, then dead-lettered.
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 8
    retry_base_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    poll_interval_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    lease_s: Annotated[float, msgspec.Meta(ge=0.1, le=600)] = 10.0
    # Events read per partition per round; delivery records kept this long; dead letters kept per partition.
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 200
    # Usage records folded into the accounts' summaries per pass, about (core/usage_summary.py).
    max_usage_per_pass: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 5000
    # Notices handed off at once by one notifier (a kill may send these again: they were in flight).
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 32
    notice_retention_s: Annotated[int, msgspec.Meta(ge=3600, le=366 * 86400)] = 7 * 86400
    max_dead_letters: Annotated[int, msgspec.Meta(ge=100, le=10**7)] = 100_000
    sms: SmsChannelSettings = SmsChannelSettings()
    email: EmailChannelSettings = EmailChannelSettings()
    webhook: WebhookChannelSettings = WebhookChannelSettings()


# gRPC metadata in which the portal sends each call's visitor address (creditd counts budgets by it).
CLIENT_ADDRESS_METADATA = "creditd-client-address"


class PortalSettings(Struct, frozen=True):
    """`creditd portal`, the subscribers' self-service web page (creditd/portal/)."""

    listen: str = "127.0.0.1:8080"
    # The address subscribers open (https://... behind a TLS proxy). Cookies are Secure and HSTS is
    # sent when it is https; a portal listening off loopback needs an https one.
    public_url: Url = ""
    # creditd's gRPC address, and the portal's client certificate there (role portal); without them,
    # plaintext (loopback development only).
    server: str = "127.0.0.1:50051"
    tls_ca_path: str = ""
    tls_cert_path: str = ""
    tls_key_path: str = ""
    # Signs the CSRF tokens; every portal process behind one address needs the same. Empty: a random
    # one per process (one process only).
    csrf_secret: Annotated[str, msgspec.Meta(max_length=256)] = ""
    # Proxies (addresses or networks) whose X-Forwarded-For is believed: the client is the last address
    # it names that is not one of them. Empty: the peer is the client, forwarded headers are ignored.
    trusted_proxies: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=64)] = (
        msgspec.field(default_factory=list)
    )
    # Ledger entries per history page.
    history_page: Annotated[int, msgspec.Meta(ge=5, le=200)] = 20
    # What subscribers see for bundles, destinations and services: <language>.toml, relative to the
    # config file (creditd/display_names.py).
    names_dir: Annotated[str, msgspec.Meta(max_length=1024)] = "names"
    # The payments front (`creditd payments serve`, [payments] listen) the top-up page creates PromptPay
    # QR payments on, signing with [payments.promptpay] intent_secret; empty: no PromptPay on the page.
    payments_url: Url = ""


class ChfNotifySettings(Struct, frozen=True):
    """ChargingNotifyRequest to the SMF's notifyUri ([chf.notify]): REAUTHORIZATION on creditd's REAUTH,
    ABORT_CHARGING on ABORT_SESSION, by one chf process at a time (a lease), in tasks of their own."""

    enabled: bool = True
    # The SMF's notifyUri is kept this long after the create (longer sessions are not notified).
    uri_retention_s: Annotated[int, msgspec.Meta(ge=60, le=30 * 86400)] = 86400
    attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    # Before the n-th retry: backoff_s * 2^(n-1).
    backoff_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    max_pending: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    senders: Annotated[int, msgspec.Meta(ge=1, le=256)] = 16
    lease_s: Annotated[float, msgspec.Meta(ge=1, le=600)] = 10.0
    # How often the process holding the lease reads the event feed for REAUTH and ABORT_SESSION: one read
    # covers every partition's stream, so this is the chf's CPU when idle ([events] poll_interval_s is
    # for the gRPC watch streams).
    poll_interval_s: Annotated[float, msgspec.Meta(ge=0.01, le=10)] = 0.5


class ChfSettings(Struct, frozen=True):
    """`creditd chf`, the 5G Charging Function (TS 32.291 Nchf_ConvergedCharging; creditd/chf/)."""

    # Cleartext HTTP/2 (prior knowledge) and HTTP/1.1 on loopback; TLS with the [security] files.
    listen: str = "127.0.0.1:8090"
    # With TLS: the CA whose certificates may charge over Nchf ('': [security] tls_client_ca_path, the
    # gRPC edge's). The chf cannot map a certificate to a role as the gRPC edge does (granian hands the
    # application no client certificate): every certificate this CA signs is an SMF to it, so give it
    # a CA that signs only SMFs' certificates.
    tls_client_ca_path: str = ""
    # creditd's gateway id of the SMFs' sessions: (gateway_id, ChargingDataRef, invocationSequenceNumber)
    # is applied at most once.
    gateway_id: Annotated[str, msgspec.Meta(pattern=f"^{ID.regex().pattern}$")] = "nchf"
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    max_containers_per_unit: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 64
    # Per HTTP/2 connection; an SMF keeps one connection for hours, so no request count ends one.
    max_concurrent_streams: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256
    # Requests being answered at once by this process; beyond, 503 (the SMF retries elsewhere).
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 4096
    # An idle connection is pinged this often and closed when the ping is not answered in time.
    keep_alive_interval_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60
    keep_alive_timeout_s: Annotated[int, msgspec.Meta(ge=1, le=600)] = 20
    # Stopping: requests in flight get this long to finish.
    drain_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 5.0
    notify: ChfNotifySettings = ChfNotifySettings()
