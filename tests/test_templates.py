"""Notice templates: every shipped template (4 languages x 13 kinds) renders with a sample notice,
money and dates formatted for its language; `creditd check-config` renders them all and exits 2
naming the file when one is missing, does not parse, uses an unknown variable, reaches for Python
internals (the sandbox refuses) or lacks its subject line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from creditd.errors import ConfigError
from creditd.notifier.templates import SUBSCRIBER_KINDS, Templates, sample_context
from creditd.resources import default_config_path
from creditd.settings import LANGUAGES
from tests.test_rating_config import SHIPPED

TEMPLATES = default_config_path().parent / "templates"


def test_every_shipped_template_renders_in_its_language() -> None:
    templates = Templates(TEMPLATES)
    assert templates.check() == len(LANGUAGES) * len(SUBSCRIBER_KINDS) == 52
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
