"""Counters and histograms for the metrics every request updates, kept per thread and summed when
scraped.

prometheus_client's Counter and Histogram take a lock for every update, and a histogram looks for
its bucket in a Python loop over the bounds: the five updates of a unary Charge (requests, charges,
request duration, the Redis pipeline's calls and duration) were 38 500 of the serving process'
551 000 instructions per Charge (loadtest.server_instructions, with those updates made no-ops). Here
each thread updates cells of its own, so without a lock: an update is a thread-local look-up and an
addition, and a histogram finds its bucket with bisect. A scrape sums every thread's cells; it may
miss an update made while it reads, which the next scrape shows, as prometheus_client's may between
its locks. Cells of a thread that ended stay counted: counters never go down.

The exposition is prometheus_client's own (its metric families): the same names, labels and samples
(`_total` and `_created` for a counter; `_bucket`, `_count`, `_sum` and `_created` for a histogram).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar, cast

from prometheus_client import utils
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

# how prometheus_client spells a bucket's bound (le="0.001", le="+Inf")
bound_text = cast(Callable[[float], str], utils.floatToGoString)


class _Cells:
    """Numbers updated by many threads without a lock: each thread adds to a list of its own."""

    def __init__(self, size: int) -> None:
        self._size = size
        self.local = threading.local()  # .cells: this thread's, once it made its first update
        self._every_thread: list[list[float]] = []
        self._lock = threading.Lock()  # taken once per thread (its first update) and per scrape
        self.created = time.time()

    def mine(self) -> list[float]:
        """This thread's cells (made at its first update); only this thread writes them."""
        try:
            cells: list[float] = self.local.cells
        except AttributeError:
            cells = self.local.cells = [0.0] * self._size
            with self._lock:
                self._every_thread.append(cells)
        return cells

    def totals(self) -> list[float]:
        with self._lock:
            every_thread = list(self._every_thread)
        return [math.fsum(cells[index] for cells in every_thread) for index in range(self._size)]


class _Child:
    """A metric child's cells; `local` is this thread's view of them, read first on the hot path."""

    __slots__ = ("_cells", "_local")

    def __init__(self, size: int) -> None:
        self._cells = _Cells(size)
        self._local = self._cells.local

    @property
    def created(self) -> float:
        return self._cells.created


class CounterChild(_Child):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(1)

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up: inc({amount})")
        try:
            self._local.cells[0] += amount
        except AttributeError:
            self._cells.mine()[0] += amount

    def value(self) -> float:
        return self._cells.totals()[0]


class HistogramChild(_Child):
    __slots__ = ("_bounds",)

    def __init__(self, bounds: tuple[float, ...]) -> None:
        # one count per bucket (not cumulative), then the sum
        super().__init__(len(bounds) + 1)
        self._bounds = bounds

    def observe(self, amount: float) -> None:
        try:
            cells = self._local.cells
        except AttributeError:
            cells = self._cells.mine()
        # the first bound not below the amount: its bucket (le="bound") is the smallest that holds it
        cells[bisect.bisect_left(self._bounds, amount)] += 1
        cells[-1] += amount

    def buckets_and_sum(self) -> tuple[list[tuple[str, float]], float]:
        totals = self._cells.totals()
        cumulative, buckets = 0.0, []
        for bound, count in zip(self._bounds, totals[:-1], strict=True):
            cumulative += count
            buckets.append((bound_text(bound), cumulative))
        return buckets, totals[-1]


Child = TypeVar("Child", CounterChild, HistogramChild)


class _PerThreadMetric(Collector, Generic[Child]):
    """A metric family of children by label values, registered as a collector."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple[str, ...], Child] = {}
        self._lock = threading.Lock()
        # a metric without labels has its one child from the start, updated without a look-up
        self._only: Child | None = None if self._labelnames else self._children.setdefault((), self._new_child())
        registry.register(self)

    def _new_child(self) -> Child:
        raise NotImplementedError

    def labels(self, *values: str, **named: str) -> Child:
        if named:
            if values:
                raise ValueError("label values: by position or by name, not both")
            values = tuple(named[name] for name in self._labelnames)
        key = tuple(str(value) for value in values)
        if len(key) != len(self._labelnames):
            raise ValueError(f"{self._name}: {len(self._labelnames)} label values expected, got {len(key)}")
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, self._new_child())
        return child

    def _labelled(self, update: str) -> ValueError:
        return ValueError(f"{self._name} has labels: {update} its labels(...)")

    def _items(self) -> list[tuple[tuple[str, ...], Child]]:
        with self._lock:
            return list(self._children.items())

    def describe(self) -> list[Metric]:
        return [self._family()]

    def _family(self) -> Metric:
        raise NotImplementedError


class PerThreadCounter(_PerThreadMetric[CounterChild]):
    """prometheus_client's Counter for the hot path: labels(...).inc(amount)."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1) -> None:
        only = self._only  # read here, not by a helper: every request updates one
        if only is None:
            raise self._labelled("inc")
        only.inc(amount)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in self._items():
            family.add_metric(values, child.value(), created=child.created)
        yield family


class PerThreadHistogram(_PerThreadMetric[HistogramChild]):
    """prometheus_client's Histogram for the hot path: labels(...).observe(amount), or observe
    directly when it has no labels."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(bound) for bound in buckets)
        if list(bounds) != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be increasing")
        self._bounds = bounds if bounds and bounds[-1] == math.inf else (*bounds, math.inf)
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def observe(self, amount: float) -> None:
        only = self._only  # read here, not by a helper: every request updates one
        if only is None:
            raise self._labelled("observe with")
        only.observe(amount)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        created = []
        for values, child in self._items():
            buckets, sum_value = child.buckets_and_sum()
            family.add_metric(list(values), buckets, sum_value)
            labels = dict(zip(self._labelnames, values, strict=True))
            created.append(Sample(f"{self._name}_created", labels, child.created))
        family.samples.extend(created)
        yield family
