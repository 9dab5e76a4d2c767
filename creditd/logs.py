"""Logging: one line per notable event, as text or as JSON (--log-format json), each carrying the
request id and session id of the call it belongs to. Balances are never logged, nor secrets: lines
name accounts, amounts of the operation itself, and fields, nothing else."""

from __future__ import annotations

import contextvars
import itertools
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterable

import msgspec

# A call's metadata, as grpc's ServicerContext.invocation_metadata gives it.
MetadataSource = Callable[[], Iterable[tuple[str, str | bytes]] | None]


class CallNames:
    """What the current RPC's log lines and ledger entries name: its request id, the gateway's
    session id, and the authenticated caller (certificate name, or "local" without TLS). One object
    a call, set once in its context (a context variable set costs a copy of the context's map, and
    this happens on every call); the caller is filled in once it is known. The request id and the
    session id are read from the call when first asked for (a log line, an internal error's
    message): most calls never are, and reading them costs the call its metadata as a new tuple and
    a field read from its request message."""

    __slots__ = ("_metadata", "_request", "_request_id", "_session_id", "caller")

    def __init__(self, request: object = None, metadata: MetadataSource | None = None, caller: str = "") -> None:
        self._request, self._metadata, self.caller = request, metadata, caller
        self._request_id: str | None = None
        self._session_id: str | None = None

    @property
    def request_id(self) -> str:
        if self._request_id is None:
            supplied = ""
            for key, value in (self._metadata() if self._metadata is not None else None) or ():
                if key == "x-request-id":
                    supplied = str(value)
                    break
            self._request_id, self._metadata = new_request_id(supplied), None
        return self._request_id

    @property
    def session_id(self) -> str:
        if self._session_id is None:
            self._session_id, self._request = str(getattr(self._request, "session_id", "")), None
        return self._session_id


CALL: contextvars.ContextVar[CallNames | None] = contextvars.ContextVar("call", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


# Generated ids: this process's random prefix and a counter (uuid4 per request showed in profiles).
_PROCESS_PREFIX = uuid.uuid4().hex[:8]
_SERIAL = itertools.count(1)


def caller() -> str:
    """The identity recorded in the ledger for the current call."""
    names = CALL.get()
    return (names.caller if names is not None else "") or "local"


def request_id() -> str:
    """The current call's request id; empty outside an RPC."""
    names = CALL.get()
    return names.request_id if names is not None else ""


def new_request_id(supplied: str = "") -> str:
    """The caller's x-request-id when it is a sane token, else a fresh one."""
    if 0 < len(supplied) <= 64 and supplied.isascii() and supplied.replace("-", "").isalnum():
        return supplied
    return f"{_PROCESS_PREFIX}-{next(_SERIAL):x}"


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        names = CALL.get()
        request_id, session_id = (names.request_id, names.session_id) if names is not None else ("", "")
        # The record's extra attributes, read by the formats (%(context)s) and JsonFormatter.
        record.__dict__.update(request_id=request_id, session_id=session_id)
        parts = [f"{name}={value}" for name, value in (("request", request_id), ("session", session_id)) if value]
        record.__dict__["context"] = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "session_id"):
            value = getattr(record, name, "")
            if value:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def configure(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
