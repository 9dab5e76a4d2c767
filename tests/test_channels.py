"""The notifier's channels against real servers on loopback: a webhook POST to a real HTTP server
carries the notice as JSON with a Stripe-style HMAC-SHA256 signature the receiver can verify; an
e-mail goes through a real SMTP server (aiosmtpd) over STARTTLS with a certificate from the test CA
and a login, Thai text intact; an SMS request has the form Kannel's sendsms takes (UCS-2 for Thai,
the delivery-report URL). Refusals are permanent (4xx, a recipient refused), outages retryable (5xx,
429, a closed port, an SMTP 4xx). One SMTP session serves notice after notice (counted at the
server), also after a refused recipient, and one the server has closed meanwhile is replaced at the
next notice. The real Kannel is in test_kannel.py."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from creditd.config.fronts import EmailChannelSettings, SmsChannelSettings, WebhookChannelSettings
from creditd.devtools.ports import free_port
from creditd.notifier.channels import SIGNATURE_HEADER, ChannelError, EmailChannel, SmsChannel, WebhookChannel
from creditd.notifier.templates import Notice
from tests.certificates import make_pki

pytestmark = pytest.mark.asyncio
THAI = Notice(subject="ยอดเงินคงเหลือต่ำ", text="ยอดเงินคงเหลือ ฿15.50 เติมเงินได้ที่ https://topup.example.net/")
SECRET = "whsec-test"


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's next status and keeps what came."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))  # type: ignore[attr-defined]
        status = self.server.statuses.pop(0) if self.server.statuses else 202  # type: ignore[attr-defined]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"0: Accepted for delivery" if status < 300 else b"refused")

    do_GET = do_POST = _answer

    def log_message(self, *arguments: object) -> None:
        pass


@contextlib.contextmanager
def http_server(*statuses: int) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen, server.statuses = [], list(statuses)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_webhook_is_signed_and_its_failures_classified() -> None:
    with http_server(200, 503, 400, 429) as server:
        url = f"http://127.0.0.1:{server.server_port}/hooks/creditd"
        channel = WebhookChannel(WebhookChannelSettings(url=url, secret=SECRET))
        payload = {"kind": "low_balance", "account_id": "66812345678", "subject": THAI.subject, "text": THAI.text}
        await channel.send(payload, "n-1")
        method, path, headers, body = server.seen[0]  # type: ignore[attr-defined]
        assert (method, path, headers["Idempotency-Key"]) == ("POST", "/hooks/creditd", "n-1")
        assert json.loads(body) == payload
        timestamp, given = (part.split("=", 1)[1] for part in headers[SIGNATURE_HEADER].split(","))
        expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(given, expected)
        for retryable in (True, False, True):  # 503, 400, 429
            with pytest.raises(ChannelError) as error:
                await channel.send(payload, "n-2")
            assert error.value.retryable is retryable, error.value.message
    closed = WebhookChannel(WebhookChannelSettings(url=f"http://127.0.0.1:{free_port()}/", secret=SECRET, timeout_s=2))
    with pytest.raises(ChannelError) as error:
        await closed.send({}, "n-3")
    assert error.value.retryable


async def test_an_sms_request_has_kannels_sendsms_form() -> None:
    with http_server(202, 202, 403) as server:
        url = f"http://127.0.0.1:{server.server_port}/cgi-bin/sendsms"
        settings = SmsChannelSettings(
            url=url,
            username="creditd",
            password="secret",
            sender="TOPUP",
            dlr_url="http://127.0.0.1:1/dlr?id={id}&t=%d",
        )
        channel = SmsChannel(settings)
        await channel.send("66812345678", THAI, "n-9")
        await channel.send("66812345678", Notice(subject="x", text="Balance THB 15.50"), "n-10")
        thai, latin = (parse_qs(urlparse(path).query) for _, path, _, _ in server.seen)  # type: ignore[attr-defined]
        assert thai["text"] == [THAI.text] and thai["charset"] == ["UTF-8"] and thai["coding"] == ["2"]
        assert thai["to"] == ["66812345678"] and thai["from"] == ["TOPUP"] and thai["username"] == ["creditd"]
        assert thai["dlr-url"] == ["http://127.0.0.1:1/dlr?id=n-9&t=%d"] and thai["dlr-mask"] == ["31"]
        assert latin["coding"] == ["0"]
        with pytest.raises(ChannelError) as error:
            await channel.send("0", THAI, "n-11")
        assert not error.value.retryable and "HTTP 403" in error.value.message


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.sessions = 0

    async def handle_EHLO(
        self, server: object, session: object, envelope: object, hostname: str, responses: list
    ) -> list:  # noqa: N802 - aiosmtpd's name
        session.host_name = hostname  # type: ignore[attr-defined]  # a handle_EHLO hook must (aiosmtpd)
        if getattr(session, "ssl", None) is None:  # EHLO comes again after STARTTLS, on the same session
            self.sessions += 1
        return responses

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str, options: list) -> str:
        if address.startswith("nobody@"):
            return "550 no such user"
        if address.startswith("busy@"):
            return "451 try again later"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(envelope.original_content)  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


def login(server: object, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"creditd", b"secret")
    return AuthResult(success=ok, handled=False)


async def test_an_email_goes_through_smtp_with_starttls_and_login(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    cert, key, ca = pki.server_paths()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox, port = Inbox(), free_port()

    def smtp_server() -> Controller:
        return Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=tls,
            require_starttls=True,
            authenticator=login,
            auth_require_tls=True,
        )

    controller = smtp_server()
    controller.start()
    try:
        settings = EmailChannelSettings(
            host="localhost",
            port=port,
            username="creditd",
            password="secret",
            sender="notices@example.net",
            ca_path=str(ca),
            timeout_s=5,
        )
        channel = EmailChannel(settings)
        await channel.send("somchai@example.net", THAI, "n-20")
        await asyncio.sleep(0.1)
        message = inbox.messages[0].decode()
        assert "Message-ID: <n-20@creditd>" in message and "To: somchai@example.net" in message
        parsed = email.message_from_string(message, policy=email.policy.default)
        assert str(parsed["Subject"]) == THAI.subject and parsed.get_content().strip() == THAI.text
        for address, retryable in (("nobody@example.net", False), ("busy@example.net", True)):
            with pytest.raises(ChannelError) as error:
                await channel.send(address, THAI, "n-21")
            assert error.value.retryable is retryable, error.value.message
        await channel.send("somchai@example.net", THAI, "n-23")
        # one session, kept open for the next notice, even past refused recipients
        assert (len(inbox.messages), inbox.sessions) == (2, 1)
        wrong = EmailChannel(msgspec.structs.replace(settings, password="guess"))
        with pytest.raises(ChannelError) as error:
            await wrong.send("somchai@example.net", THAI, "n-22")
        assert not error.value.retryable and "535" in error.value.message
    finally:
        controller.stop()
    # the server went away and came back: the kept session is stale, the next notice opens a new one
    restarted = smtp_server()
    restarted.start()
    try:
        await channel.send("somchai@example.net", THAI, "n-24")
        assert (len(inbox.messages), inbox.sessions) == (3, 3)  # the refused login opened the second
    finally:
        restarted.stop()
        await channel.close()
