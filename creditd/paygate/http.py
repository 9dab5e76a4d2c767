"""What the front's handlers share: reading a bounded JSON body, and JSON answers."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from creditd.payments.agents import BadRequest


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (naming it) past max_bytes, read no further than that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(f"body: larger than {max_bytes} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BadRequest(f"body: larger than {max_bytes} bytes")
    return body


def json_object(body: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body: not JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("body: a JSON object")
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    return document


def json_answer(content: object, status_code: int = 200) -> Response:
    return Response(msgspec.json.encode(content), status_code=status_code, media_type="application/json")
