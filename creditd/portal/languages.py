"""Which language a page speaks: the subscriber's preference, else the first of the browser's
languages (Accept-Language, by q-value) that the portal speaks, else English."""

from __future__ import annotations

from starlette.requests import Request

from creditd.config.fronts import LANGUAGES
from creditd.v1 import creditd_pb2 as pb


def accepted_language(request: Request) -> str:
    """The first of the browser's languages that the portal speaks, by q-value; else English."""
    ranked = []
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            ranked.append((float(q) if q else 1.0, tag.split("-")[0].lower()))
        except ValueError:
            continue
    for _, language in sorted(ranked, key=lambda item: -item[0]):
        if language in LANGUAGES:
            return language
    return "en"


def language_of(request: Request, card: pb.Account) -> str:
    """The subscriber's language, else the browser's."""
    return card.preferences.language or accepted_language(request)
