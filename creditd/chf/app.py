"""The Nchf_ConvergedCharging v3 ASGI application: three POSTs onto Charging.charge, the core entry point
the gRPC Charge uses (core/charging.py), and the project's OpenAPI document.

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
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import msgspec

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
ACCOUNT_ID_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
MAX_ACCOUNT_ID_LENGTH = 64
MAX_URI_LENGTH = 1000
NOTIFY_URI = re.compile(r"https?://[!-~]+")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Answer(msgspec.Struct, frozen=True):
    status: int
    body: bytes = b""
    content_type: bytes = b"application/json"
    location: str = ""


def problem_answer(problem: Problem) -> Answer:
    return Answer(problem.details.status, ENCODER.encode(problem.details), PROBLEM_JSON)


def route(method: str, path: str) -> tuple[convert.Operation | str, str]:
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


class ChfApp:
    def __init__(self, charging: Charging, settings: Settings, notifications: Notifications | None = None) -> None:
        self._charging = charging
        self._notifications = notifications
        self._settings = settings
        self._units = convert.rating_group_units(settings)
        self._document = DOCUMENT.read_bytes()
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        operation, ref = route(scope["method"], scope["path"])
        label = operation.value if isinstance(operation, convert.Operation) else operation
        try:
            answer = await self._answer(scope, receive, operation, ref)
        except Problem as problem:
            answer = problem_answer(problem)
        headers = [(b"content-length", str(len(answer.body)).encode())]
        if answer.body:
            headers.append((b"content-type", answer.content_type))
        if answer.location:
            headers.append((b"location", answer.location.encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        metrics.CHF_REQUESTS.labels(label, str(answer.status)).inc()
        metrics.CHF_REQUEST_DURATION.labels(label).observe(time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Receive, operation: convert.Operation | str, ref: str) -> Answer:
        if operation == "openapi":
            if scope["method"] not in ("GET", "HEAD"):
                raise Problem(405, "METHOD_NOT_ALLOWED", "GET the document")
            return Answer(200, self._document, b"application/yaml")
        if not isinstance(operation, convert.Operation):
            raise Problem(404, "RESOURCE_URI_STRUCTURE_NOT_FOUND", f"no resource {scope['path'][:200]}")
        if scope["method"] != "POST":
            raise Problem(405, "METHOD_NOT_ALLOWED", "POST a ChargingDataRequest")
        body = await self._body(scope, receive)
        if self._in_flight >= self._settings.chf.max_in_flight:
            raise Problem(503, "NF_CONGESTION", "too many requests in flight in this chf process; retry")
        self._in_flight += 1
        try:
            return await self._charge(scope, operation, ref, body)
        finally:
            self._in_flight -= 1

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self._settings.chf.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-type" and not value.split(b";", 1)[0].strip().lower().endswith(b"json"):
                raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", "the body is a ChargingDataRequest: application/json")
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Problem(400, "CHARGING_FAILED", "the client went away before the body was whole")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Problem(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

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

    async def _charge(self, scope: Scope, operation: convert.Operation, ref: str, body: bytes) -> Answer:
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
        return Answer(201, response, location=self._location(scope, ref))

    @staticmethod
    def _location(scope: Scope, ref: str) -> str:
        host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
        if not host:
            server = scope.get("server") or ("127.0.0.1", 0)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}{CHARGING_DATA}/{ref}"
