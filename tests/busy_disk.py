"""A disk kept busy for a test: a thread writes files beside the test's data and fsyncs each, so that
the fsyncs of a Redis on the same disk are slow, as on a host under real load. Under `appendfsync
everysec` Redis then holds its AOF write back while its background fsync runs (up to 2 s) and answers
meanwhile, which is what the crash tests that use this must survive."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

CHUNK_BYTES = 1 << 20
FILE_BYTES = 256 << 20  # one fsync of this much takes long enough to overlap Redis' own


def _write_until(stopping: threading.Event, path: Path) -> None:
    chunk = bytes(CHUNK_BYTES)
    try:
        while not stopping.is_set():
            with path.open("wb") as file:
                for _ in range(FILE_BYTES // CHUNK_BYTES):
                    if stopping.is_set():
                        break
                    file.write(chunk)
                file.flush()
                os.fsync(file.fileno())
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def busy_disk(directory: Path) -> Iterator[None]:
    """Keeps the disk of `directory` busy until the block ends (one file of FILE_BYTES at a time)."""
    stopping = threading.Event()
    writer = threading.Thread(target=_write_until, args=(stopping, directory / "busy-disk.bin"), daemon=True)
    writer.start()
    try:
        yield
    finally:
        stopping.set()
        writer.join()
