"""A call's names (creditd/logs.py CallNames) are read from the call only when first asked for: the
request id from its x-request-id metadata (kept when it is a sane token, else a fresh id of this
process), the session id from its request message. Proves each rule on plain objects standing in
for grpc's context and a request, and that the metadata is read at most once, and never when no one
asks; the log lines that carry both are checked through a real server in test_operations and
test_internal_errors."""

from __future__ import annotations

from collections.abc import Iterable

from creditd.logs import CallNames
from creditd.v1 import creditd_pb2 as pb


class Metadata:
    """A call's metadata, counting how often it is read."""

    def __init__(self, *pairs: tuple[str, str | bytes]) -> None:
        self.pairs, self.reads = pairs, 0

    def __call__(self) -> Iterable[tuple[str, str | bytes]]:
        self.reads += 1
        return self.pairs


def test_a_sane_request_id_is_kept_and_the_metadata_read_once() -> None:
    metadata = Metadata(("user-agent", "grpc-python"), ("x-request-id", "req-7f3a"))
    names = CallNames(pb.ChargeRequest(session_id="s-1"), metadata)
    assert metadata.reads == 0  # nothing read until asked
    assert (names.request_id, names.request_id, names.session_id) == ("req-7f3a", "req-7f3a", "s-1")
    assert metadata.reads == 1


def test_a_missing_or_insane_request_id_is_replaced_by_a_fresh_one() -> None:
    fresh = [
        CallNames(None, Metadata()).request_id,
        CallNames(None, Metadata(("x-request-id", "has spaces"))).request_id,
        CallNames(None, Metadata(("x-request-id", "x" * 65))).request_id,
        CallNames(None, lambda: None).request_id,
        CallNames().request_id,
    ]
    assert len(set(fresh)) == len(fresh), fresh
    assert all(" " not in name and 0 < len(name) <= 64 for name in fresh), fresh


def test_the_session_id_is_the_requests_or_empty() -> None:
    assert CallNames(pb.ChargeRequest(session_id="s-9")).session_id == "s-9"
    assert CallNames(pb.GetAccountRequest(account_id="66800000001")).session_id == ""
    assert CallNames().session_id == ""
    assert CallNames(caller="gw-cert").caller == "gw-cert"
