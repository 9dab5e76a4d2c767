"""Notice templates: config/templates/<language>/<kind>.txt, rendered with Jinja2's sandboxed
environment (a template cannot reach Python internals) and StrictUndefined (a misspelt variable is an
error, found at start: `creditd check-config` renders every template with a sample notice).

A template's first line is the e-mail subject, 'Subject: ...'; after one blank line comes the text,
which is what an SMS carries. The variables (NoticeContext): name, balance, available, amount (a
top-up, a low-balance threshold, the data cap, a bonus granted or left unused at its expiry,
formatted), next_status (in words), next_step_at and valid_until (a date and time in the subscriber's
time zone), days, bundle, percent, topup_url, offer_bundle, offer_price, code. Money and dates are
formatted for the language (Babel).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from creditd.config.fronts import LANGUAGES, MARKETING_NOTICE_KINDS, SERVICE_NOTICE_KINDS
from creditd.errors import ConfigError
from creditd.formatting import local_time, money

SERVICE_KINDS = SERVICE_NOTICE_KINDS
MARKETING_KINDS = MARKETING_NOTICE_KINDS
SUBSCRIBER_KINDS = SERVICE_KINDS + MARKETING_KINDS
# A campaign's notices (creditd campaign send) have kind 'campaign:<template>', from
# <language>/campaigns/<template>.txt; marketing, like offers.
CAMPAIGN_PREFIX = "campaign:"
CAMPAIGN_DIRECTORY = "campaigns"
MAX_CAMPAIGN_TEMPLATES = 256


def kind_label(kind: str) -> str:
    """A kind as a metric label: every campaign is 'campaign' (labels come from a small fixed set)."""
    return "campaign" if kind.startswith(CAMPAIGN_PREFIX) else kind


def is_marketing(kind: str) -> bool:
    return kind in MARKETING_KINDS or kind.startswith(CAMPAIGN_PREFIX)


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
    code: str = ""  # a sign-in code
    reason: str = ""  # a status notice's: CREDIT, or an operator's ADMIN or FRAUD
    valid_until: str = ""  # a bonus's expiry
    fee: str = ""  # an emergency credit's fee
    owed: str = ""  # what the subscriber owes after an emergency credit


class Notice(msgspec.Struct, frozen=True):
    subject: str
    text: str


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
        code="123456",
        fee=money(100, "THB", language),
        owed=money(1_100, "THB", language),
        valid_until=local_time(1_807_369_200_000, "Asia/Bangkok", language),
    )


class Templates:
    """Every (language, kind) template of a directory, compiled; a missing or broken one is a
    ConfigError naming its file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._compiled: dict[tuple[str, str], Template] = {}
        campaigns = sorted(path.stem for path in (directory / LANGUAGES[0] / CAMPAIGN_DIRECTORY).glob("*.txt"))
        if len(campaigns) > MAX_CAMPAIGN_TEMPLATES:
            raise ConfigError(f"{directory / LANGUAGES[0] / CAMPAIGN_DIRECTORY}: more than {MAX_CAMPAIGN_TEMPLATES}")
        for language in LANGUAGES:
            for kind in SUBSCRIBER_KINDS:
                self._compile(language, kind, directory / language / f"{kind}.txt")
            for name in campaigns:
                path = directory / language / CAMPAIGN_DIRECTORY / f"{name}.txt"
                self._compile(language, CAMPAIGN_PREFIX + name, path)
        self.campaigns = tuple(campaigns)

    def _compile(self, language: str, kind: str, path: Path) -> None:
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
        if len(source.encode()) > MAX_TEMPLATE_BYTES or not source.startswith(SUBJECT_PREFIX):
            raise ConfigError(f"{path}: must start with '{SUBJECT_PREFIX}' and be under {MAX_TEMPLATE_BYTES} bytes")
        try:
            self._compiled[(language, kind)] = self._environment.from_string(source)
        except TemplateError as error:
            raise ConfigError(f"{path}: {error}") from None

    def render(self, language: str, kind: str, context: NoticeContext) -> Notice:
        try:
            text = self._compiled[(language, kind)].render(msgspec.structs.asdict(context))
        except TemplateError as error:
            raise ConfigError(f"{self.path_of(language, kind)}: {error}") from None
        head, _, body = text.partition("\n\n")
        return Notice(subject=head.removeprefix(SUBJECT_PREFIX).strip(), text=body.strip())

    def path_of(self, language: str, kind: str) -> Path:
        if kind.startswith(CAMPAIGN_PREFIX):
            return self.directory / language / CAMPAIGN_DIRECTORY / f"{kind.removeprefix(CAMPAIGN_PREFIX)}.txt"
        return self.directory / language / f"{kind}.txt"

    def check(self) -> int:
        """Renders each template with a sample notice; returns how many rendered."""
        for language, kind in self._compiled:
            notice = self.render(language, kind, sample_context(language))
            if not notice.subject or not notice.text:
                raise ConfigError(f"{self.path_of(language, kind)}: needs a subject and, after a blank line, a text")
        return len(self._compiled)
