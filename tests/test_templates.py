"""Notice templates: every shipped template (4 languages x 16 kinds, and the sample campaign)
renders with a sample notice, money and dates formatted for its language; a campaign template
missing in one language is named; an urgent kind that is not a service notice kind is a config
error, as is an SMTP host without a sender; `creditd check-config` renders them all and exits 2
naming the file when one is missing, does not parse, uses an unknown variable, reaches for Python
internals (the sandbox refuses) or lacks its subject line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from creditd.config.fronts import LANGUAGES
from creditd.config.settings import parse_settings
from creditd.errors import ConfigError
from creditd.notifier.templates import SUBSCRIBER_KINDS, Templates, sample_context
from creditd.resources import default_config_path
from tests.test_rating_config import SHIPPED

TEMPLATES = default_config_path().parent / "templates"


def test_every_shipped_template_renders_in_its_language() -> None:
    templates = Templates(TEMPLATES)
    assert templates.campaigns == ("songkran",)
    assert templates.check() == len(LANGUAGES) * (len(SUBSCRIBER_KINDS) + 1) == 72
    campaign = templates.render("zh", "campaign:songkran", sample_context("zh"))
    assert campaign.subject == "泼水节：本周流量翻倍" and "Somchai" in campaign.text
    thai = templates.render("th", "low_balance", sample_context("th"))
    assert thai.subject == "ยอดเงินคงเหลือต่ำ" and "฿15.50" in thai.text and "https://topup.example.net/" in thai.text
    russian = templates.render("ru", "low_balance", sample_context("ru"))
    assert "15,50" in russian.text and "\n" not in russian.subject
    english = templates.render("en", "suspension_coming", sample_context("en"))
    assert "outgoing calls barred from Mar 10, 2027" in english.text and "(3 days)" in english.text


def copy_with(tmp_path: Path, language: str, kind: str, content: str | None) -> Path:
    directory = tmp_path / "templates"
    shutil.copytree(TEMPLATES, directory)
    target = directory / language / f"{kind}.txt"
    if content is None:
        target.unlink()
    else:
        target.write_text(content, encoding="utf-8")
    return directory


def test_a_campaign_missing_in_a_language_is_named(tmp_path: Path) -> None:
    directory = copy_with(tmp_path, "ru", "campaigns/songkran", None)
    with pytest.raises(ConfigError) as error:
        Templates(directory)
    assert "ru/campaigns/songkran.txt: cannot read" in error.value.message


def test_an_smtp_host_needs_a_sender() -> None:
    text = SHIPPED.replace("[notifications]\n", '[notifications]\nemail = { host = "smtp.example.net" }\n', 1)
    with pytest.raises(ConfigError) as error:
        parse_settings(tomllib.loads(text), "test")
    assert error.value.message.startswith("notifications.email.sender: an address")


def test_an_urgent_kind_must_be_a_service_notice_kind() -> None:
    text = SHIPPED.replace("# urgent_notice_kinds = [", "urgent_notice_kinds = [").replace(
        '["suspended_two_way"]', '["suspended_two_way", "offer"]'
    )
    with pytest.raises(ConfigError) as error:
        parse_settings(tomllib.loads(text), "test")
    assert error.value.message.startswith("plans.standard.urgent_notice_kinds: offer is not a service notice kind")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "th/topup.txt: cannot read"),
        ("Subject: x\n\n{{ balance ", "th/topup.txt: unexpected end of template"),
        ("Subject: x\n\n{{ balence }}", "th/topup.txt: 'balence' is undefined"),
        ("Subject: x\n\n{{ name.__class__.__mro__ }}", "th/topup.txt: access to attribute '__class__'"),
        ("Top-up!\n\n{{ amount }}", "th/topup.txt: must start with 'Subject: '"),
        ("Subject: x\n{{ amount }}", "th/topup.txt: needs a subject and, after a blank line, a text"),
    ],
)
def test_a_broken_template_is_named(tmp_path: Path, content: str | None, message: str) -> None:
    directory = copy_with(tmp_path, "th", "topup", content)
    with pytest.raises(ConfigError) as error:
        Templates(directory).check()
    assert message in error.value.message, error.value.message

    config = tmp_path / "creditd.toml"
    config.write_text(SHIPPED.replace(f'templates_dir = "{TEMPLATES}"', 'templates_dir = "templates"'))
    result = subprocess.run(
        [sys.executable, "-m", "creditd", "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and message in result.stderr
