"""Notice templates: config/templates/<language>/<kind>.txt, rendered with Jinja2's sandboxed
environment (a template cannot reach Python internals) and StrictUndefined (a misspelt variable is an
error, found at start: `creditd check-config` renders every template with a sample notice).

A template's first line is the e-mail subject, 'Subject: ...'; after one blank line comes the text,
which is what an SMS carries. The variables (NoticeContext): name, balance, available, amount (a
top-up, a low-balance threshold or the data cap, formatted), next_status (in words), next_step_at
(a date and time in the subscriber's time zone), days, bundle, percent, topup_url, offer_bundle,
offer_price. Money and dates are formatted for the language (Babel).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
from babel.dates import format_datetime
from babel.numbers import format_currency
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from creditd.errors import ConfigError
from creditd.settings import LANGUAGES

# The event kinds a subscriber is told about; MARKETING_KINDS only with their opt-in.
SERVICE_KINDS = (
    "low_balance",
    "suspension_coming",
    "suspended_one_way",
    "suspended_two_way",
    "resumed",
    "terminated",
    "topup",
    "bundle_purchased",
    "bundle_nearly_used",
    "bundle_used_up",
    "bundle_expired",
    "data_overage_cap_reached",
)
MARKETING_KINDS = ("offer",)
SUBSCRIBER_KINDS = SERVICE_KINDS + MARKETING_KINDS
SUBJECT_PREFIX = "Subject: "
MAX_TEMPLATE_BYTES = 4096

STATUS_WORDS = {
    "en": {
        "ONE_WAY_SUSPENDED": "outgoing calls barred",
        "TWO_WAY_SUSPENDED": "all calls barred",
        "TERMINATED": "closed",
    },
    "th": {
        "ONE_WAY_SUSPENDED": "ระงับการโทรออก",
        "TWO_WAY_SUSPENDED": "ระงับการโทรเข้าและโทรออก",
        "TERMINATED": "ยกเลิกหมายเลข",
    },
    "ru": {
        "ONE_WAY_SUSPENDED": "исходящие вызовы заблокированы",
        "TWO_WAY_SUSPENDED": "все вызовы заблокированы",
        "TERMINATED": "номер закрыт",
    },
    "zh": {"ONE_WAY_SUSPENDED": "停止呼出", "TWO_WAY_SUSPENDED": "停止呼入和呼出", "TERMINATED": "销号"},
}


class NoticeContext(msgspec.Struct, frozen=True):
    name: str = ""
    balance: str = ""
    available: str = ""
    amount: str = ""
    next_status: str = ""
    next_step_at: str = ""
    days: int = 0
    bundle: str = ""
    percent: int = 0
    topup_url: str = ""
    offer_bundle: str = ""
    offer_price: str = ""


class Notice(msgspec.Struct, frozen=True):
    subject: str
    text: str


def money(amount_minor: int, currency: str, language: str, minor_digits: int = 2) -> str:
    return str(format_currency(amount_minor / 10**minor_digits, currency, locale=language))


def local_time(instant_ms: int, time_zone: str, language: str) -> str:
    moment = datetime.fromtimestamp(instant_ms / 1000, UTC)
    return str(format_datetime(moment, "medium", tzinfo=ZoneInfo(time_zone), locale=language))


def status_words(status: str, language: str) -> str:
    return STATUS_WORDS[language].get(status, status)


def sample_context(language: str) -> NoticeContext:
    """Every variable filled, for check-config's trial rendering."""
    return NoticeContext(
        name="Somchai",
        balance=money(1_550, "THB", language),
        available=money(1_550, "THB", language),
        amount=money(2_000, "THB", language),
        next_status=status_words("ONE_WAY_SUSPENDED", language),
        next_step_at=local_time(1_804_690_800_000, "Asia/Bangkok", language),
        days=3,
        bundle="data_1gb",
        percent=80,
        topup_url="https://topup.example.net/",
        offer_bundle="data_1gb",
        offer_price=money(9_900, "THB", language),
    )


class Templates:
    """Every (language, kind) template of a directory, compiled; a missing or broken one is a
    ConfigError naming its file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._compiled = {}
        for language in LANGUAGES:
            for kind in SUBSCRIBER_KINDS:
                path = directory / language / f"{kind}.txt"
                try:
                    source = path.read_text(encoding="utf-8")
                except OSError as error:
                    raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
                if len(source.encode()) > MAX_TEMPLATE_BYTES or not source.startswith(SUBJECT_PREFIX):
                    raise ConfigError(
                        f"{path}: must start with '{SUBJECT_PREFIX}' and be under {MAX_TEMPLATE_BYTES} bytes"
                    )
                try:
                    self._compiled[(language, kind)] = environment.from_string(source)
                except TemplateError as error:
                    raise ConfigError(f"{path}: {error}") from None

    def render(self, language: str, kind: str, context: NoticeContext) -> Notice:
        try:
            text = self._compiled[(language, kind)].render(msgspec.structs.asdict(context))
        except TemplateError as error:
            raise ConfigError(f"{self.directory / language / kind}.txt: {error}") from None
        head, _, body = text.partition("\n\n")
        return Notice(subject=head.removeprefix(SUBJECT_PREFIX).strip(), text=body.strip())

    def check(self) -> int:
        """Renders each template with a sample notice; returns how many rendered."""
        for language, kind in self._compiled:
            notice = self.render(language, kind, sample_context(language))
            if not notice.subject or not notice.text:
                raise ConfigError(
                    f"{self.directory / language / kind}.txt: needs a subject and, after a blank line, a text"
                )
        return len(self._compiled)
