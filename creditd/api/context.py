"""The servicer context type every handler sees, whatever its messages (the proto stubs type those)."""

from __future__ import annotations

from typing import Any

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
