"""The messages of a real kamailio (ims_charging 5.6.3) Ro exchange, from the hex dump beside this file:
CER/CEA, CCR-I/U/U/T with their CCAs, DWR/DWA, as (direction, name, bytes)."""

from __future__ import annotations

from pathlib import Path

CAPTURE = Path(__file__).parent / "kamailio-ro-capture.txt"


def messages() -> list[tuple[str, str, bytes]]:
    found: list[tuple[str, str, bytes]] = []
    for line in CAPTURE.read_text().splitlines():
        if line.startswith("### "):
            direction, name = line.split()[1:3]
            found.append((direction, name, b""))
        elif line.strip():
            words = line.split(":", 1)[1].split("  ")[0].split()
            direction, name, data = found[-1]
            found[-1] = (direction, name, data + bytes.fromhex("".join(words)))
    return found


def received(name: str) -> list[bytes]:
    return [data for direction, kind, data in messages() if direction == "RECV" and kind == name]
