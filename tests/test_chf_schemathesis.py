"""schemathesis runs the project's own OpenAPI document (fetched from the live server at
.../v3/openapi.yaml) against a whole `creditd chf` process, over HTTP/1.1 (schemathesis' requests
transport) and over one cleartext HTTP/2 connection (httpx, prior knowledge):

- every generated request, valid or not for the chf, gets no server error and an answer whose status,
  content type, headers and body the document allows;
- the state machine follows the document's links, create -> update -> release (the ChargingDataRef
  taken from the Location header): most creates name a funded account, one generated body in two
  (chosen by its own hash, so that Hypothesis' replays meet the same choices and server outcomes) is
  reduced to its required attributes, and linked requests are numbered on, so that creates, updates
  and releases succeed as well as fail;
- after it all, the auditor finds every invariant of Redis intact.

Bounded: a fixed number of examples per operation and of state machine steps."""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.transport import Response

from creditd.config.settings import Settings
from creditd.core.audit import Auditor
from creditd.devtools.ports import free_port, wait_listening
from tests.chf_smf import API, create_accounts, start_chf_process, stop_process
from tests.harness import library_client

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
FUNDED = [f"6680000{n:04d}" for n in range(8)]
EXAMPLES = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def live_chf(redis_server: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with library_client(redis_server.url, settings) as client:
        create_accounts(client, settings, FUNDED, 10**12)
        port = free_port()
        process = start_chf_process(redis_server.url, port, Path(tmp_path_factory.mktemp("chf")) / "chf.log")
        try:
            wait_listening(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(process)
        report = Auditor(client, settings.redis.partitions).run(None, 0)
        assert report.violations == [], report.violations


@pytest.fixture(scope="module")
def nchf(live_chf: str) -> Any:
    loaded = schemathesis.openapi.from_url(live_chf + API + "/openapi.yaml")
    loaded.config.update(base_url=live_chf + API)
    return loaded


@pytest.fixture(scope="module")
def h2(live_chf: str) -> Iterator[httpx.Client]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(http1=False, http2=True, limits=limits, timeout=10) as client:
        yield client


schema = schemathesis.pytest.from_fixture("nchf")


LINKED_NUMBERS = itertools.count(1000)


CREATES = itertools.count()


def fund(case: Any) -> None:
    """Most creates name a funded account (a random SUPI names none: 404), so that sessions open;
    every create names a session of its own (a time stamp of its own), so that an example Hypothesis
    replays meets the same server state."""
    body = case.body
    if case.operation.label.endswith("/chargingdata") and isinstance(body, dict):
        if "invocationTimeStamp" in body:
            body["invocationTimeStamp"] = f"2026-12-03T10:00:00.{next(CREATES):09d}Z"
        number = body.get("invocationSequenceNumber")
        if isinstance(number, int) and number % 4:
            body["subscriberIdentifier"] = f"imsi-{FUNDED[number % len(FUNDED)]}"
            body["invocationSequenceNumber"] = number % 1000


def half(body: dict[str, Any]) -> bool:
    """One generated body in two, the same one each time Hypothesis replays it."""
    return zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode()) % 2 == 0


def required_only(body: dict[str, Any], number: int) -> None:
    body.clear()
    body.update(
        nfConsumerIdentification={"nodeFunctionality": "SMF"},
        invocationTimeStamp="2026-12-03T10:00:00Z",
        invocationSequenceNumber=number,
    )


def open_sessions(case: Any, minimal: bool) -> None:
    """In the state machine, one create in two is a funded minimal one, so that sessions surely open
    and the links have somewhere to go (the stateless tests fuzz creates in full)."""
    body = case.body
    if case.operation.label.endswith("/chargingdata") and isinstance(body, dict) and minimal:
        required_only(body, 0)
        body["invocationTimeStamp"] = f"2026-12-03T10:00:00.{next(CREATES):09d}Z"
        body["subscriberIdentifier"] = f"imsi-{FUNDED[0]}"
        body["multipleUnitUsage"] = [{"ratingGroup": 1, "requestedUnit": {"totalVolume": 1000}}]


def in_sequence(case: Any, minimal: bool) -> None:
    """An update or release reached by a link goes on the session's sequence (a random number is
    below the last one half the time: 400); every other one carries only the required attributes,
    so that some releases surely succeed."""
    body = case.body
    if not case.operation.label.endswith("/chargingdata") and isinstance(body, dict):
        number = next(LINKED_NUMBERS)
        if minimal:
            required_only(body, number)
        else:
            body["invocationSequenceNumber"] = number


def send_h2(h2: httpx.Client, case: Any, base_url: str) -> httpx.Response:
    request = case.as_transport_kwargs(base_url=base_url)
    if isinstance(request.get("data"), bytes | str):
        request["content"] = request.pop("data")  # httpx's name for a raw body
    if not request.get("cookies"):
        request.pop("cookies", None)  # httpx deprecates per-request cookies; schemathesis sends none here
    response = h2.request(**request)
    assert response.http_version == "HTTP/2"
    return response


@schema.parametrize()
@EXAMPLES
def test_http1_answers_conform(case: Any) -> None:
    fund(case)
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@EXAMPLES
def test_http2_answers_conform(case: Any, h2: httpx.Client, live_chf: str) -> None:
    fund(case)
    response = send_h2(h2, case, live_chf + API)
    case.validate_response(response, checks=CHECKS)


def test_stateful_links_over_http2(nchf: Any, h2: httpx.Client, live_chf: str) -> None:
    followed: dict[str, int] = {}

    class Machine(nchf.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> Response:
            # chosen from the body as generated, before anything here changes it
            minimal = isinstance(case.body, dict) and half(case.body)
            fund(case)
            open_sessions(case, minimal)
            in_sequence(case, minimal)
            answer = send_h2(h2, case, live_chf + API)
            key = f"{case.operation.label} {answer.status_code}"
            followed[key] = followed.get(key, 0) + 1
            return Response.from_any(answer)

        def validate_response(self, response: Response, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Machine.run(
        settings=settings(
            max_examples=30, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
        )
    )
    # the links were followed: sessions opened, updated and released by their Location
    assert followed.get("POST /chargingdata 201", 0) > 0, followed
    assert followed.get("POST /chargingdata/{ChargingDataRef}/update 200", 0) > 0, followed
    assert followed.get("POST /chargingdata/{ChargingDataRef}/release 204", 0) > 0, followed
