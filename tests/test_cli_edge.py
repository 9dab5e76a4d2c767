"""The CLI's edge, run as real subprocesses against a real server (and, for the failures, against a
port where nothing listens): a negative amount is a value, never an option; `account adjust` takes
one and writes an adjustment; a negative top-up, a bad id, channel, bundle or credit limit is refused
naming the field and writes nothing (the whole Redis dump is compared); `charge` stops after a refused
INITIAL and exits 1; an unreachable server or Redis is one line with a hint, never a traceback: in a
real process for one of each, and in-process (click's runner) for one command of every group that
reaches Redis, the server or a metrics page, on a closed port. The help of every command and option
is read from the real command tree: each says what it is, and every amount says its unit."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from creditd.cli.edge import positionals_last
from creditd.cli.main import main
from creditd.v1 import creditd_pb2 as pb
from tests.harness import THAI_NUMBER, Harness, dump

ACCOUNT = "66812345678"
# Parameters that carry money: their option's help or their command's help says "minor units".
MONEY_PARAMETERS = {"amount", "initial_balance", "credit_limit"}


async def run(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "creditd",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode()


async def cli(creditd: Harness, *arguments: str) -> tuple[int, str]:
    return await run(*arguments, "--server", f"127.0.0.1:{creditd.server.port}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.asyncio
async def test_adjust_takes_a_negative_amount_wherever_the_options_are(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    code, output = await cli(creditd, "account", "adjust", ACCOUNT, "-100", "--reason", "double top-up", "--key", "a1")
    assert code == 0, output
    assert "adjustment a1: applied" in output and "balance 900" in output and "balance      900" in output
    code, output = await cli(creditd, "account", "adjust", "--reason", "goodwill", ACCOUNT, "250", "--key", "a2")
    assert code == 0 and "balance 1150" in output
    code, output = await cli(creditd, "account", "adjust", "--key", "a1", ACCOUNT, "--reason", "double top-up", "-100")
    assert code == 0 and "adjustment a1: REPLAYED (nothing applied)" in output and "balance 1150" in output
    assert (await creditd.get(ACCOUNT)).balance == 1150
    entries = await creditd.ledger(ACCOUNT)
    assert [(entry.amount, entry.reference) for entry in entries[:2]] == [
        (250, "a2 goodwill"),
        (-100, "a1 double top-up"),
    ]


@pytest.mark.asyncio
async def test_negative_top_up_and_credit_limit_are_refused_and_write_nothing(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    before = dump(creditd.redis)
    code, output = await cli(creditd, "account", "topup", ACCOUNT, "-100")
    assert code == 2 and "No such option" not in output
    assert "'AMOUNT'" in output and f"creditd account adjust {ACCOUNT} -100 --reason" in output
    code, output = await cli(creditd, "account", "credit-limit", ACCOUNT, "-50")
    assert code == 2 and "No such option" not in output and "AMOUNT" in output and "-50" in output
    code, output = await cli(creditd, "account", "adjust", ACCOUNT, "0", "--reason", "nothing")
    assert code == 2 and "not 0" in output
    code, output = await cli(creditd, "account", "adjust", ACCOUNT, "-5", "--bogus")
    assert code == 2 and "No such option '--bogus'" in output
    assert dump(creditd.redis) == before


@pytest.mark.asyncio
async def test_ids_channels_and_bundles_are_checked_naming_the_field(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    before = dump(creditd.redis)
    refusals = [
        (("account", "create", "abc"), "account_id: a new account is the subscriber's number"),
        (("account", "create", "66800000001", "--plan", "no plan"), "plan: contains characters other than A-Z a-z 0-9"),
        (("account", "topup", ACCOUNT, "100", "--channel", "bogus"), "channel: unknown channel 'bogus'; one of"),
        (("account", "show", "a{b}"), "account_id: contains characters other than A-Z a-z 0-9"),
        (("account", "adjust", ACCOUNT, "-5", "--reason", "a\tb"), "reason: contains control characters"),
        (("charge", ACCOUNT, "--gateway-id", "a b"), "gateway_id: contains characters other than A-Z a-z 0-9"),
        (("charge", ACCOUNT, "--called-party", "12ab"), "called_party: at most 15 digits"),
        (("charge", ACCOUNT, "--visited-plmn", "5"), "visited_plmn: MCC+MNC"),
    ]
    for arguments, message in refusals:
        code, output = await cli(creditd, *arguments)
        assert code == 2 and message in output, (arguments, output)
    code, output = await cli(creditd, "account", "buy", ACCOUNT, "data_2tb")
    assert code == 1 and "bundle_id: not offered by plan standard; it offers: data_1gb (9900)" in output
    assert "sms_50 (1900)" in output
    assert dump(creditd.redis) == before


@pytest.mark.asyncio
async def test_charge_stops_after_a_refused_initial(creditd: Harness) -> None:
    code, output = await cli(creditd, "charge", "66800000404")
    lines = output.splitlines()
    assert code == 1 and lines[0].startswith("INITIAL   #0: USER_UNKNOWN") and "account_id: unknown account" in lines[0]
    assert "UPDATE" not in output and "TERMINATE" not in output and "UNSPECIFIED" not in output
    assert "no session was opened" in lines[1] and len(lines) == 2

    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.accounts.SetStatus(
        pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TWO_WAY_SUSPENDED, reason="FRAUD")
    )
    before = dump(creditd.redis)
    code, output = await cli(
        creditd, "charge", ACCOUNT, "--rating-group", "2", "--used", "90", "--called-party", THAI_NUMBER
    )
    assert code == 1 and output.startswith("INITIAL   #0: ") and "SUCCESS" not in output
    assert "account TWO_WAY_SUSPENDED" in output and "UPDATE" not in output and "TERMINATE" not in output
    # The server keeps its refusal (for a retried INITIAL to get the same answer); nothing else changed.
    after = dump(creditd.redis)
    assert {key: value for key, value in after.items() if b":session:" not in key} == before
    assert (await creditd.get(ACCOUNT)).open_sessions == 0

    code, output = await cli(creditd, "account", "status", ACCOUNT, "ACTIVE")
    code, output = await cli(
        creditd,
        "charge",
        ACCOUNT,
        "--rating-group",
        "2",
        "--used",
        "90",
        "--called-party",
        THAI_NUMBER,
        "--updates",
        "1",
    )
    assert code == 0 and output.count("SUCCESS  account ACTIVE") == 3, output


@pytest.mark.asyncio
async def test_an_unreachable_server_or_redis_is_one_line_with_a_hint() -> None:
    port = closed_port()
    (code, output), (redis_code, redis_output) = await asyncio.gather(
        run("account", "show", ACCOUNT, "--server", f"127.0.0.1:{port}"),
        run("audit", "--redis", f"redis://127.0.0.1:{port}"),
    )
    assert code == 1 and "Traceback" not in output
    hint = f"is `creditd serve` running at 127.0.0.1:{port}? (--server HOST:PORT)"
    assert output.strip() == f"Error: UNAVAILABLE: cannot reach creditd: {hint}"
    assert redis_code == 1 and "Traceback" not in redis_output and len(redis_output.strip().splitlines()) == 1
    assert "redis: cannot reach Redis" in redis_output and "is Redis running there?" in redis_output, redis_output


# One command of every group that reaches Redis, the server or a metrics page, run against a closed port;
# `{port}` is the port. The long-running ones (serve, notify, portal, console serve, payments serve,
# chf, diameter) are left out: they start a server, and tests/test_serve.py and
# tests/test_startup_shutdown.py see them fail fast on a Redis they cannot reach.
UNREACHABLE = {
    "account": ("account", "show", ACCOUNT, "--server", "127.0.0.1:{port}"),
    "charge": ("charge", ACCOUNT, "--server", "127.0.0.1:{port}"),
    "events": ("events", "tail", "--server", "127.0.0.1:{port}"),
    "report": ("report", "arrears", "--redis", "redis://127.0.0.1:{port}"),
    "voucher": ("voucher", "reconcile", "--redis", "redis://127.0.0.1:{port}"),
    "audit": ("audit", "--redis", "redis://127.0.0.1:{port}"),
    "tiers": ("tiers", "recompute", "--redis", "redis://127.0.0.1:{port}"),
    "usage": ("usage", "export", "--out", "{tmp}/usage.csv", "--redis", "redis://127.0.0.1:{port}"),
    "rerate": ("rerate", "--from", "2027-01-01", "--to", "2027-01-02", "--redis", "redis://127.0.0.1:{port}"),
    "notify": ("notify", "status", "--redis", "redis://127.0.0.1:{port}"),
    "campaign": ("campaign", "send", "--template", "songkran", "--redis", "redis://127.0.0.1:{port}"),
    "payments": ("payments", "list", "--redis", "redis://127.0.0.1:{port}"),
    "diameter": ("diameter", "status", "--metrics", "127.0.0.1:{port}"),
}
LONG_RUNNING = {"serve", "portal", "console", "chf", "notify", "diameter", "payments"}
HINTS = ("`creditd serve` running at 127.0.0.1:{port}?", "is Redis running there?", "running with its metrics_listen")


def test_every_command_group_answers_a_closed_port_with_one_line_and_a_hint(tmp_path: Path) -> None:
    reaching = {
        path[1]
        for path, command in commands(main, ("creditd",))
        if len(path) > 1 and {"server", "redis_url", "metrics_address"} & {p.name for p in command.params}
    }
    assert reaching - LONG_RUNNING <= set(UNREACHABLE), "a command group that reaches out has no case here"
    port = closed_port()
    for group, command in UNREACHABLE.items():
        result = CliRunner().invoke(main, [part.format(port=port, tmp=tmp_path) for part in command])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (group, result.output)
        assert len(lines) == 1 and lines[0].startswith("Error: "), (group, result.output)
        assert any(hint.format(port=port) in lines[0] for hint in HINTS), (group, result.output)


def commands(command: click.Command, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += commands(sub, (*path, name))
    return found


def test_every_command_and_option_has_help_and_every_amount_its_unit() -> None:
    tree = commands(main, ("creditd",))
    assert len(tree) > 25
    for path, command in tree:
        assert command.help, f"{' '.join(path)}: no help text"
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{' '.join(path)} {parameter.opts[0]}: no help text"
            if parameter.name in MONEY_PARAMETERS:
                said = f"{command.help} {getattr(parameter, 'help', '') or ''}"
                assert "minor units" in said, f"{' '.join(path)} {parameter.name}: no unit in its help"


def test_negative_numbers_are_moved_behind_a_double_dash() -> None:
    adjust = main.commands["account"].commands["adjust"]  # type: ignore[attr-defined]
    context = click.Context(adjust)
    assert positionals_last(adjust, context, ["6681", "100"]) == ["6681", "100"]
    assert positionals_last(adjust, context, ["--reason", "-5 off", "6681", "-100", "--key", "k"]) == [
        "--reason",
        "-5 off",
        "--key",
        "k",
        "--",
        "6681",
        "-100",
    ]
    assert positionals_last(adjust, context, ["--reason", "-7", "6681", "-100"]) == [
        "--reason",
        "-7",
        "--",
        "6681",
        "-100",
    ]
    assert positionals_last(adjust, context, ["6681", "--", "-100"]) == ["--", "6681", "-100"]
