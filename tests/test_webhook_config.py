"""Webhooks a receiver can trust (issue #37, finding 8): the configuration refuses a webhook URL without
a secret and an http:// URL off loopback (check-config, run as a subprocess, and the settings parser;
both accepted on b7c6e5e), and accepts https anywhere and http on loopback; the receiver's example in
docs/operating.md, executed as printed, accepts a body signed by the notifier's own signature() and refuses a
changed body, a wrong secret, a timestamp outside the window, a malformed header and a replay."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from creditd.config.settings import parse_settings
from creditd.errors import ConfigError
from creditd.notifier.channels import signature
from creditd.resources import default_config_path

OPERATING = Path(__file__).resolve().parent.parent / "docs" / "operating.md"


def with_webhook(url: str, secret: str) -> dict[str, object]:
    document = tomllib.loads(default_config_path().read_text())
    notifications = document.setdefault("notifications", {})
    assert isinstance(notifications, dict)
    notifications["webhook"] = {"url": url, "secret": secret}
    return document


@pytest.mark.parametrize(
    ("url", "secret", "refusal"),
    [
        ("https://hooks.example.test/creditd", "", "notifications.webhook.secret"),
        ("http://hooks.example.test/creditd", "s3cret", "notifications.webhook.url"),
        ("http://10.0.0.5:8000/creditd", "s3cret", "notifications.webhook.url"),
    ],
)
def test_unsafe_webhooks_are_refused(url: str, secret: str, refusal: str) -> None:
    with pytest.raises(ConfigError, match=refusal):
        parse_settings(with_webhook(url, secret), "test", default_config_path().parent)


def test_safe_webhooks_are_accepted() -> None:
    for url in ("https://hooks.example.test/creditd", "http://127.0.0.1:9000/hook", "http://localhost:9000/hook"):
        parse_settings(with_webhook(url, "s3cret"), "test", default_config_path().parent)


def test_check_config_names_the_empty_secret(tmp_path: Path) -> None:
    config = tmp_path / "creditd.toml"
    text = default_config_path().read_text()
    config.write_text(text + '\n[notifications.webhook]\nurl = "https://hooks.example.test/x"\nsecret = ""\n')
    checked = subprocess.run(
        [sys.executable, "-m", "creditd", "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode != 0 and "notifications.webhook.secret" in checked.stdout + checked.stderr


def test_the_readme_receiver_verifies_and_refuses() -> None:
    block = re.search(r"<!-- webhook-verify.*?-->\s*```python\n(.*?)```", OPERATING.read_text(), re.S)
    assert block, "the receiver's example is gone from docs/operating.md"
    namespace: dict[str, object] = {}
    exec(re.sub(r"^  ", "", block.group(1), flags=re.M), namespace)  # noqa: S102 (our own document)
    verify = namespace["verify"]
    body, now = b'{"id":"n1","kind":"topup"}', int(time.time())
    header = signature("s3cret", now, body)
    assert verify(b"s3cret", header, body, "n1", now)  # type: ignore[operator]
    assert not verify(b"s3cret", header, body, "n1", now)  # type: ignore[operator]  # a replay
    assert not verify(b"s3cret", header, body + b" ", "n2", now)  # type: ignore[operator]
    assert not verify(b"other", header, body, "n3", now)  # type: ignore[operator]
    assert not verify(b"s3cret", header, body, "n4", now + 301)  # type: ignore[operator]
    assert not verify(b"s3cret", "t=x,v1=ü", body, "n5", now)  # type: ignore[operator]
