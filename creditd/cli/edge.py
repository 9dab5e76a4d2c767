"""The CLI's edge: how arguments are read and checked before anything is sent, and how a failure of the
server or of Redis reaches the person at the terminal.

- A negative number (`-100`) is always a value, never an option: click would read `-1` as a flag, so
  a command moves the positional arguments behind a `--` before click parses them.
- Ids, channels, numbers and the called party are checked with the server's own rules
  (creditd/api/validation.py), so a mistake is refused naming the field and nothing is sent.
- UNAVAILABLE, a Redis or a metrics page that cannot be reached and creditd's own errors become one
  line with a hint, never a traceback.
"""

from __future__ import annotations

import re
from typing import Any

import click
import grpc
import redis

from creditd import contract
from creditd.api import validation
from creditd.config.settings import load_settings
from creditd.errors import CreditdError, InvalidArgument
from creditd.resources import default_config_path

NEGATIVE_NUMBER = re.compile(r"-[0-9]+")
# The account id `account create` gives a new subscriber: their number, E.164 without the "+".
SUBSCRIBER_NUMBER = re.compile(r"[0-9]{5,15}")
REDIS_HINT = "is Redis running there? (--redis URL, $CREDITD_REDIS_URL, or --data-dir of a running embedded server)"


def _value_options(command: click.Command, context: click.Context) -> set[str]:
    names: set[str] = set()
    for parameter in command.get_params(context):
        if isinstance(parameter, click.Option) and not parameter.is_flag and not parameter.count:
            names.update(parameter.opts)
            names.update(parameter.secondary_opts)
    return names


def positionals_last(command: click.Command, context: click.Context, arguments: list[str]) -> list[str]:
    """The same command line with its options first and its positional arguments after `--`, when one
    of them is a negative number (click would take `-100` for the option `-1`)."""
    if not any(NEGATIVE_NUMBER.fullmatch(argument) for argument in arguments):
        return arguments
    takes_value = _value_options(command, context)
    options: list[str] = []
    positionals: list[str] = []
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument == "--":
            positionals += arguments[index + 1 :]
            break
        if argument.startswith("-") and len(argument) > 1 and not NEGATIVE_NUMBER.fullmatch(argument):
            options.append(argument)
            if argument in takes_value and index + 1 < len(arguments):
                index += 1
                options.append(arguments[index])
        else:
            positionals.append(argument)
        index += 1
    return [*options, "--", *positionals]


def rpc_error_message(error: grpc.RpcError, server: str | None) -> str:
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        where = server or "the --server address"
        return f"UNAVAILABLE: cannot reach creditd: is `creditd serve` running at {where}? (--server HOST:PORT)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"DEADLINE_EXCEEDED: creditd at {server} did not answer in time; is it overloaded or is Redis down?"
    return f"{code.name}: {error.details()}"


def metrics_error_message(address: str, error: OSError) -> str:
    """A process' /metrics page that could not be read: one line, with the hint."""
    reason = getattr(error, "reason", None) or error
    return f"cannot read http://{address}/metrics ({reason}): is the process running with its metrics_listen there?"


def redis_error_message(error: redis.RedisError) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return f"redis: cannot reach Redis ({text}): {REDIS_HINT}"
    return f"redis: {text}"


class Command(click.Command):
    """A click command that reads negative numbers as values and fails in one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, positionals_last(self, ctx, args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except grpc.RpcError as error:
            raise click.ClickException(rpc_error_message(error, ctx.params.get("server"))) from None
        except redis.RedisError as error:
            raise click.ClickException(redis_error_message(error)) from None
        except CreditdError as error:
            raise click.ClickException(error.message) from None


class Group(click.Group):
    """A click group whose commands and sub-groups are of these classes, and whose own callback (a
    group that also runs, like `creditd notify`) fails in one line too."""

    command_class = Command
    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except redis.RedisError as error:
            raise click.ClickException(redis_error_message(error)) from None
        except CreditdError as error:
            raise click.ClickException(error.message) from None


def _as_parameter_error(check: Any, value: Any, field: str) -> None:
    try:
        check(value, field)
    except InvalidArgument as error:
        raise click.BadParameter(error.message) from None


def identifier(field: str, optional: bool = False) -> Any:
    """A click callback checking an id with the server's rule (1-64 of A-Z a-z 0-9 . _ : -)."""

    def check(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
        if value is None or (optional and value == ""):
            return value
        _as_parameter_error(validation.check_id, value, field)
        return value

    return check


def subscriber_number(context: click.Context, parameter: click.Parameter, value: str) -> str:
    if not SUBSCRIBER_NUMBER.fullmatch(value):
        raise click.BadParameter(
            f"account_id: a new account is the subscriber's number, 5-15 digits (E.164 without +), not {value[:32]!r}"
        )
    return value


def top_up_channel(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """A top-up channel the config names (metrics.channels): an unknown one is a typo, refused."""
    channels = load_settings(default_config_path()).metrics.channels
    if value not in channels:
        raise click.BadParameter(f"channel: unknown channel {value[:32]!r}; one of {', '.join(channels)}")
    return value


def called_party(context: click.Context, parameter: click.Parameter, value: str) -> str:
    if not validation.valid_called_party(value):
        raise click.BadParameter("called_party: at most 15 digits (E.164), a leading + allowed")
    return value


def visited_plmn(context: click.Context, parameter: click.Parameter, value: str) -> str:
    if not validation.valid_visited_plmn(value):
        raise click.BadParameter("visited_plmn: MCC+MNC, 5 or 6 digits, or empty for the home network")
    return value


def session_id(context: click.Context, parameter: click.Parameter, value: str | None) -> str | None:
    if value is not None and not validation.SESSION_ID_PATTERN.fullmatch(value):
        raise click.BadParameter(f"session_id: contains characters other than {contract.SESSION_ID.allowed}")
    return value


def free_text(field: str, maximum_length: int) -> Any:
    """A click callback checking a free text (a reason) with the server's rule: no control characters."""

    def check(context: click.Context, parameter: click.Parameter, value: str) -> str:
        if not value:
            raise click.BadParameter(f"{field}: must not be empty")
        try:
            validation.check_free_text(value, field, maximum_length)
        except InvalidArgument as error:
            raise click.BadParameter(error.message) from None
        return value

    return check
