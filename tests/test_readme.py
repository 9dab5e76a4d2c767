"""The README's console examples run: every ```console block is played, command by command, as real
`creditd` subprocesses against a live server (a fresh one per block, on the test clock's daytime so the
day tariff holds), and each command's output must equal the text under it, with times, session ids
and the billing day (they depend on when the test runs) masked on both sides. A line `...` ends a
command's shown output (the rest is left out on purpose). So the README cannot drift from the
program: a change of the card's format fails here until the README shows it (shown in-process too: the
worked example's card is what render.account_card prints, and a changed format fails the comparison).
Also: the services the README names are those the server's reflection lists."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

import click
import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from creditd.cli import render
from creditd.cli.main import main
from creditd.v1 import creditd_pb2 as pb
from tests.harness import Harness

README = Path(__file__).resolve().parent.parent / "README.md"
CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ELIDED = "..."
MASKS = [
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"), "<time>"),
    (re.compile(r"cli-[0-9a-f]{12}"), "cli-<id>"),
    (re.compile(r"cycle day \d+"), "cycle day <day>"),
]
INFRASTRUCTURE = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


def masked(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text.rstrip()


def examples(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each console block as (command, the lines shown under it)."""
    blocks = []
    for block in CONSOLE_BLOCK.findall(text):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"a console block starts with output, not a command: {line!r}"
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def takes_server(arguments: list[str]) -> bool:
    command: click.Command = main
    for word in arguments:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
    return any(parameter.name == "server" for parameter in command.params)


async def run(command: str, server: str) -> str:
    arguments = shlex.split(command)
    assert arguments[0] == "creditd", f"console examples run creditd only: {command!r}"
    arguments = arguments[1:] + (["--server", server] if takes_server(arguments[1:]) else [])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "creditd", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return output.decode()


def compare(command: str, shown: list[str], output: str) -> None:
    while shown and not shown[-1].strip():
        shown = shown[:-1]
    expected = [masked(line) for line in shown]
    actual = [masked(line) for line in output.splitlines()]
    if ELIDED in expected:
        cut = expected.index(ELIDED)
        assert expected[cut + 1 :] == [], f"{command}: {ELIDED!r} must be the last line shown"
        expected, actual = expected[:cut], actual[:cut]
    assert actual == expected, (
        f"$ {command}\n--- README\n" + "\n".join(expected) + "\n--- program\n" + "\n".join(actual)
    )


def test_the_readme_has_console_examples() -> None:
    blocks = examples(README.read_text())
    assert blocks and len(blocks[0]) >= 5, "the worked example is gone"
    assert any(ELIDED in shown for steps in blocks for _, shown in steps)


def test_masks_and_elision() -> None:
    compare("x", ["a 2026-11-22 23:54:17 cli-68bb255844f7", "..."], "a 2027-01-02 03:04:05 cli-0123456789ab\nmore")
    with pytest.raises(AssertionError):
        compare("x", ["balance      1000"], "balance      900")
    with pytest.raises(AssertionError):
        compare("x", ["one line"], "one line\nand a line the README does not show")


def readme_card_account() -> pb.Account:
    """The account the worked example's first card shows (its times and billing day are masked)."""
    preferences = pb.Preferences(
        language="th", channels=["sms"], time_zone="Asia/Bangkok", quiet_hours_start="21:00", quiet_hours_end="08:00"
    )
    return pb.Account(
        account_id="66812345678",
        plan="standard",
        currency="THB",
        contact=pb.Contact(name="Somchai"),
        status=pb.ACTIVE,
        status_reason="CREATED",
        balance=1000,
        available=1000,
        tier="basic",
        billing_cycle_day=3,
        data_overage_cap=100_000,
        preferences=preferences,
    )


def test_a_card_format_changed_without_the_readme_fails_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worked example's card is shown whole (no '...' under it) and is what render.account_card
    prints; with the card's format changed (a line renamed, a line added), the comparison fails."""
    command, shown = examples(README.read_text())[0][0]
    assert command.startswith("creditd account create") and ELIDED not in shown
    compare(command, shown, render.account_card(readme_card_account()))
    original = render.account_card
    for changed in (
        lambda account: original(account).replace("balance      ", "money        "),
        lambda account: original(account) + "\nsegment      gold",
    ):
        monkeypatch.setattr(render, "account_card", changed)
        with pytest.raises(AssertionError, match="--- README"):
            compare(command, shown, render.account_card(readme_card_account()))


@pytest.mark.asyncio
@pytest.mark.parametrize("index", range(len(examples(README.read_text()))))
async def test_console_example_runs_as_shown(creditd: Harness, index: int) -> None:
    server = f"127.0.0.1:{creditd.server.port}"
    for command, shown in examples(README.read_text())[index]:
        compare(command, shown, await run(command, server))


def readme_services() -> set[str]:
    found = re.search(
        r"\(services ((?:`\w+`(?:, | and )?)+), plus `grpc.health.v1` and server reflection", README.read_text()
    )
    assert found, "the README's sentence naming the services is gone"
    return {f"creditd.v1.{name}" for name in re.findall(r"`(\w+)`", found.group(1))}


@pytest.mark.asyncio
async def test_the_services_the_readme_names_are_those_reflection_lists(creditd: Harness) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{creditd.server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        listed = {service.name async for answer in answers for service in answer.list_services_response.service}
    assert listed >= INFRASTRUCTURE
    assert listed - INFRASTRUCTURE == readme_services()
