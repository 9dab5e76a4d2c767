"""Loopback ports for fixed-port servers: below the kernel's ephemeral range, never twice in one
process, and, when the suite runs on pytest-xdist workers, from a slice of each worker's own (slices
disjoint, together the whole range), so that two workers never probe one port at once."""

from __future__ import annotations

import pytest

from creditd.devtools import ports


def test_ports_are_below_the_ephemeral_range_and_never_repeated() -> None:
    handed_out = [ports.free_port() for _ in range(50)]
    assert len(set(handed_out)) == len(handed_out)
    lowest, highest = ports.port_range()
    assert ports.LOWEST_PORT <= lowest < highest <= max(ports.LOWEST_PORT + 1_000, ports._ephemeral_start())
    assert all(lowest <= port < highest for port in handed_out)


def test_each_worker_draws_from_a_slice_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(ports._worker_range(10_000, 31_000))
    assert slices == [(10_000, 17_000), (17_000, 24_000), (24_000, 31_000)]
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    lowest, highest = ports.port_range()
    assert ports.LOWEST_PORT < lowest < highest
    assert all(lowest <= ports.free_port() < highest for _ in range(20))


@pytest.mark.parametrize(("worker", "count"), [("", ""), ("master", "2"), ("gw0", "0"), ("gw1", "x")])
def test_outside_xdist_the_whole_range(monkeypatch: pytest.MonkeyPatch, worker: str, count: str) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    assert ports._worker_range(10_000, 31_000) == (10_000, 31_000)
