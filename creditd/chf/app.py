"""The Nchf_ConvergedCharging v3 application (RSGI, served by granian): three POSTs onto Charging.charge,
the core entry point the gRPC Charge uses (core/charging.py), and the project's OpenAPI document.

    POST /nchf-convergedcharging/v3/chargingdata                       create  201 + Location
    POST /nchf-convergedcharging/v3/chargingdata/{ChargingDataRef}/update   200
    POST /nchf-convergedcharging/v3/chargingdata/{ChargingDataRef}/release  204
    GET  /nchf-convergedcharging/v3/openapi.yaml

A request is decoded, checked and converted (convert.py) before the one call of the Lua function
`charge`, which checks again and only then writes; a refused request writes nothing. Every refusal is
a ProblemDetails (problems.py); Redis away or full is a 503 the SMF may retry, with the same ref and
sequence number, on any chf process.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from granian.rsgi import ProtocolClosed, ProtocolError  # type: ignore[attr-defined]

from creditd import metrics
from creditd.chf import convert, model
from creditd.chf.notify import Notifications
from creditd.chf.problems import ENCODER, PROBLEM_JSON, Problem, invalid
from creditd.config.settings import Settings
from creditd.core.charging import Charging
from creditd.errors import CreditdError, ResourceExhausted, Unavailable
from creditd.store.codes import Code

log = logging.getLogger(__name__)

API_ROOT = "/nchf-convergedcharging/v3"
CHARGING_DATA = API_ROOT + "/chargingdata"
DOCUMENT_PATH = API_ROOT + "/openapi.yaml"
DOCUMENT = Path(__file__).with_name("openapi.yaml")
OPERATION_LABELS = ("create", "update", "release", "openapi", "other")
ACCOUNT_ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
MAX_ACCOUNT_ID_LENGTH = 64
MAX_URI_LENGTH = 1000
NOTIFY_URI = re.compile(r"https?://[!-~]+")


class Answer(msgspec.Struct, frozen=True):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    # The created resource's path; the request's scheme and host are put before it.
    location: str = ""


def problem_answer(problem: Problem) -> Answer:
    return Answer(problem.details.status, ENCODER.encode(problem.details), PROBLEM_JSON)


def route(path: str) -> tuple[convert.Operation | str, str]:
    """(operation, ChargingDataRef); the operation is 'openapi' or 'other' for what is not charging."""
    if path == DOCUMENT_PATH:
        return "openapi", ""
    if path == CHARGING_DATA:
        return convert.Operation.CREATE, ""
    if path.startswith(CHARGING_DATA + "/"):
        ref, _, action = path[len(CHARGING_DATA) + 1 :].rpartition("/")
        if action in ("update", "release") and ref and "/" not in ref:
            return convert.Operation(action), ref
    return "other", ""


def check_content_type(content_type: str | None) -> None:
    if content_type is not None and not content_type.split(";", 1)[0].strip().lower().endswith("json"):
        raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", "the body is a ChargingDataRequest: application/json")


def too_large(limit: int) -> Problem:
    return Problem(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")


GONE = "the client went away before the body was whole"
ReadBody = Callable[[int], Awaitable[bytes]]


class ChfApp:
    """An RSGI application (granian's own interface, `__rsgi__`): one call per request reads the body
    and one answers, where ASGI's receive and send messages cost the chf process more CPU per request
    on the same server (measured in docs/chf.md)."""

    def __init__(self, charging: Charging, settings: Settings, notifications: Notifications | None = None) -> None:
        self._charging = charging
        self._notifications = notifications
        self._settings = settings
        self._units = convert.rating_group_units(settings)
        self._document = DOCUMENT.read_bytes()
        self._in_flight = 0
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed = {name: metrics.CHF_REQUEST_DURATION.labels(name) for name in OPERATION_LABELS}

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        started = time.perf_counter()
        operation, ref = route(scope.path)
        headers = scope.headers
        length = headers.get("content-length")

        async def read_body(limit: int) -> bytes:
            try:
                if length is not None and length.isdigit() and int(length) <= limit:
                    return await protocol()  # type: ignore[no-any-return]
                return await rsgi_body(protocol, limit)
            except (ProtocolError, ProtocolClosed):
                raise Problem(400, "CHARGING_FAILED", GONE) from None

        content_type = headers.get("content-type")
        try:
            answer = await self._answer(scope.method, scope.path, operation, ref, content_type, read_body)
        except Problem as problem:
            answer = problem_answer(problem)
        response_headers = [("content-type", answer.content_type)] if answer.body else []
        if answer.location:
            host = scope.authority or headers.get("host") or scope.server
            response_headers.append(("location", f"{scope.scheme}://{host}{answer.location}"))
        protocol.response_bytes(answer.status, response_headers, answer.body)
        self._count(operation, answer.status, started)

    def _count(self, operation: convert.Operation | str, status: int, started: float) -> None:
        label = operation.value if isinstance(operation, convert.Operation) else operation
        counter = self._counted.get((label, status))
        if counter is None:
            counter = self._counted[(label, status)] = metrics.CHF_REQUESTS.labels(label, str(status))
        counter.inc()
        self._timed[label].observe(time.perf_counter() - started)

    async def _answer(
        self,
        method: str,
        path: str,
        operation: convert.Operation | str,
        ref: str,
        content_type: str | None,
        read_body: ReadBody,
    ) -> Answer:
        if operation == "openapi":
            if method not in ("GET", "HEAD"):
                raise Problem(405, "METHOD_NOT_ALLOWED", "GET the document")
            return Answer(200, self._document, "application/yaml")
        if not isinstance(operation, convert.Operation):
            raise Problem(404, "RESOURCE_URI_STRUCTURE_NOT_FOUND", f"no resource {path[:200]}")
        if method != "POST":
            raise Problem(405, "METHOD_NOT_ALLOWED", "POST a ChargingDataRequest")
        check_content_type(content_type)
        body = await read_body(self._settings.chf.max_body_bytes)
        if self._in_flight >= self._settings.chf.max_in_flight:
            raise Problem(503, "NF_CONGESTION", "too many requests in flight in this chf process; retry")
        self._in_flight += 1
        try:
            return await self._charge(operation, ref, body)
        finally:
            self._in_flight -= 1

    def _decode(self, body: bytes) -> model.ChargingDataRequest:
        try:
            request = model.DECODER.decode(body)
        except msgspec.ValidationError as error:
            raise invalid(*model.invalid_param(str(error))) from None
        except msgspec.DecodeError as error:
            raise invalid("/", f"not a JSON ChargingDataRequest: {error}") from None
        limits, chf = self._settings.limits, self._settings.chf
        if len(request.multipleUnitUsage) > limits.max_units_per_request:
            raise invalid("/multipleUnitUsage", f"at most {limits.max_units_per_request} items")
        if request.notifyUri and (
            len(request.notifyUri) > MAX_URI_LENGTH or not NOTIFY_URI.fullmatch(request.notifyUri)
        ):
            raise invalid("/notifyUri", f"an http or https URI of at most {MAX_URI_LENGTH} characters")
        seen: set[int] = set()
        for index, usage in enumerate(request.multipleUnitUsage):
            if usage.ratingGroup in seen:
                raise invalid(f"/multipleUnitUsage/{index}/ratingGroup", "appears twice in one request")
            seen.add(usage.ratingGroup)
            if len(usage.usedUnitContainer) > chf.max_containers_per_unit:
                param = f"/multipleUnitUsage/{index}/usedUnitContainer"
                raise invalid(param, f"at most {chf.max_containers_per_unit} containers")
        return request

    def _account_of_ref(self, ref: str) -> str:
        account_id = convert.account_of_ref(ref)
        if (
            account_id is None
            or len(account_id) > MAX_ACCOUNT_ID_LENGTH
            or not ACCOUNT_ID_CHARACTERS.issuperset(account_id)
            or len(ref) > self._settings.limits.max_session_id_length
        ):
            raise Problem(404, "RESOURCE_NOT_FOUND", "ChargingDataRef: no such charging data resource")
        return account_id

    async def _charge(self, operation: convert.Operation, ref: str, body: bytes) -> Answer:
        request = self._decode(body)
        if operation is convert.Operation.CREATE:
            account_id = convert.account_of_request(request)
            ref = convert.ref_of(request, account_id)
        else:
            account_id = self._account_of_ref(ref)
        spec = convert.charge_spec(
            request,
            operation,
            account_id,
            ref,
            self._settings.chf.gateway_id,
            self._units,
            self._settings.limits.max_units,
        )
        try:
            outcome = await self._charging.charge(spec)
        except (Unavailable, ResourceExhausted) as error:
            log.warning("Nchf %s %s: %s", operation.value, ref, error.message)
            raise Problem(503, "NF_CONGESTION", "the store cannot serve now; retry with the same request") from None
        except CreditdError as error:
            log.error("Nchf %s %s failed: %s", operation.value, ref, error.message)
            raise Problem(500, "SYSTEM_FAILURE", "internal error: logged by the chf") from None
        answer = outcome.answer
        if answer.result != Code.SUCCESS:
            raise convert.refusal(answer)
        if operation is convert.Operation.RELEASE:
            return Answer(204)
        response = ENCODER.encode(convert.response_of(request, answer))
        if operation is convert.Operation.UPDATE:
            return Answer(200, response)
        if self._notifications is not None and request.notifyUri:
            await self._notifications.remember(account_id, ref, request.notifyUri)
        return Answer(201, response, location=f"{CHARGING_DATA}/{ref}")


async def rsgi_body(protocol: Any, limit: int) -> bytes:
    """A body of unknown length, read in chunks up to limit."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in protocol:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
