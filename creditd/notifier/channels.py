"""The channels a notice goes out on, each a real protocol: SMS through an SMS gateway's HTTP send
API in the form Kannel's sendsms takes, e-mail over SMTP (STARTTLS and auth), and a webhook POST of
JSON signed the way Stripe signs its own (header 'Creditd-Signature: t=<unix s>,v1=<hex HMAC-SHA256
of "<t>.<body>">'), for CRMs and push services.

A send either returns (handed off) or raises ChannelError, which says whether trying again later
can help (a gateway or server down, busy or slow) or not (refused: a bad number or address, a
rejected request); the delivery logic retries the first kind with backoff and dead-letters the
second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage

import httpx

from creditd.config.fronts import EmailChannelSettings, SmsChannelSettings, WebhookChannelSettings
from creditd.notifier.templates import Notice

SIGNATURE_HEADER = "Creditd-Signature"
# SMTP sessions kept open between notices, at most (asyncio.to_thread sends on at most this many threads).
MAX_IDLE_SMTP_SESSIONS = 32
# HTTP answers that a later try may turn: timeouts, too many requests, server-side failures.
RETRYABLE_HTTP = frozenset({408, 425, 429})
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


class ChannelError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.message, self.retryable = message, retryable


def _http_outcome(channel: str, answer: httpx.Response) -> None:
    if answer.is_success:
        return
    retryable = answer.status_code >= 500 or answer.status_code in RETRYABLE_HTTP
    raise ChannelError(f"{channel}: HTTP {answer.status_code} {answer.text[:200].strip()}", retryable)


class HttpChannel:
    """One HTTP client per channel, made on first use and kept: a client per request would build a
    TLS context each time (25 ms here, measured)."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name, self.timeout_s = name, timeout_s
        self._client: httpx.AsyncClient | None = None

    async def request(self, method: str, url: str, **options: object) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            answer = await self._client.request(method, url, **options)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            raise ChannelError(f"{self.name}: {type(error).__name__}: {error}", retryable=True) from None
        _http_outcome(self.name, answer)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def needs_ucs2(text: str) -> bool:
    """Whether an SMS text leaves the GSM 7-bit alphabet (Thai, Russian, Chinese do): then UCS-2."""
    return any(character not in GSM_BASIC for character in text)


class SmsChannel(HttpChannel):
    def __init__(self, settings: SmsChannelSettings) -> None:
        super().__init__("sms", settings.timeout_s)
        self.settings = settings

    async def send(self, to: str, notice: Notice, notice_id: str) -> None:
        s = self.settings
        parameters = {
            "username": s.username,
            "password": s.password,
            "from": s.sender,
            "to": to,
            "text": notice.text,
            "charset": "UTF-8",
            "coding": "2" if needs_ucs2(notice.text) else "0",
        }
        if s.dlr_url:
            parameters |= {"dlr-mask": "31", "dlr-url": s.dlr_url.replace("{id}", notice_id)}
        await self.request("GET", s.url, params=parameters)


class EmailChannel:
    """SMTP sessions are kept open between notices (each new one costs a connection, EHLO, STARTTLS's
    TLS handshake and AUTH) and reused, one per sending thread at a time; a kept session the server
    has since closed is replaced once, at the next notice."""

    def __init__(self, settings: EmailChannelSettings) -> None:
        self.settings = settings
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _login(self, server: smtplib.SMTP) -> None:
        """AUTH PLAIN when offered (one exchange, a refusal is final), else smtplib's choice, which
        tries mechanism after mechanism."""
        s = self.settings
        if "PLAIN" in server.esmtp_features.get("auth", "").upper().split():
            server.user, server.password = s.username, s.password
            server.auth("PLAIN", server.auth_plain)
        else:
            server.login(s.username, s.password)

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        server = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        try:
            server.ehlo()
            if s.starttls:
                server.starttls(context=ssl.create_default_context(cafile=s.ca_path or None))
                server.ehlo()
            if s.username:
                self._login(server)
        except BaseException:
            server.close()
            raise
        return server

    def _take(self) -> tuple[smtplib.SMTP, bool]:
        """An idle session (True: reused) or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._open(), False

    def _send(self, message: EmailMessage) -> None:
        server, reused = self._take()
        try:
            server.send_message(message)
        except smtplib.SMTPServerDisconnected:
            server.close()
            if not reused:
                raise
            server = self._open()  # the kept session had gone stale
            try:
                server.send_message(message)
            except BaseException:
                server.close()
                raise
        except smtplib.SMTPRecipientsRefused:
            server.rset()  # the session is fine; only this recipient was refused
            self._give_back(server)
            raise
        except BaseException:
            server.close()
            raise
        self._give_back(server)

    def _give_back(self, server: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_SMTP_SESSIONS:
                self._idle.append(server)
                return
        server.quit()

    async def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for server in idle:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                await asyncio.to_thread(server.quit)

    async def send(self, to: str, notice: Notice, notice_id: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.settings.sender, to, notice.subject
        message["Message-ID"] = f"<{notice_id}@creditd>"
        message.set_content(notice.text)
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPRecipientsRefused as error:
            # 4xx: the mailbox is busy or full for now; 5xx: there is no such mailbox.
            retryable = all(400 <= code < 500 for code, _ in error.recipients.values())
            raise ChannelError(f"email: recipient refused: {error.recipients}", retryable) from None
        except smtplib.SMTPResponseException as error:
            retryable = 400 <= error.smtp_code < 500
            raise ChannelError(f"email: {error.smtp_code} {error.smtp_error!r}", retryable) from None
        except (smtplib.SMTPException, OSError) as error:
            raise ChannelError(f"email: {type(error).__name__}: {error}", retryable=True) from None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookChannel(HttpChannel):
    def __init__(self, settings: WebhookChannelSettings) -> None:
        super().__init__("webhook", settings.timeout_s)
        self.settings = settings

    async def send(self, payload: dict[str, object], notice_id: str) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": notice_id,
            SIGNATURE_HEADER: signature(self.settings.secret, int(time.time()), body),
        }
        await self.request("POST", self.settings.url, content=body, headers=headers)
