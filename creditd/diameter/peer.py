"""One Diameter connection (RFC 6733 §5, RFC 3539): the CER/CEA handshake against the peer table, then
requests served concurrently (bounded per connection), DWR/DWA and the watchdog, DPR/DPA both ways.

Everything is bounded: no CER within handshake_timeout_s, a message stalled half-way as long, a header
announcing more than max_message_bytes, a peer that does not read our answers within write_timeout_s,
an unanswered watchdog: the connection is closed, logged and counted, and nothing is charged."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Final

from creditd.config.diameter import DiameterSettings
from creditd.diameter import metrics
from creditd.diameter.codec import (
    FLAG_REQUEST,
    HEADER_BYTES,
    Avp,
    DiameterError,
    Message,
    check_header,
    decode,
    decode_header,
    encode,
    make,
    text,
)
from creditd.diameter.credit import base_answer, refusal
from creditd.diameter.dictionary import CREDIT_CONTROL_APPLICATION, VENDOR_3GPP, Code, Command, Result
from creditd.diameter.read_deadline import ReadDeadline

log = logging.getLogger(__name__)

DISCONNECT_REBOOTING: Final = 0
RELAY_APPLICATION: Final = 0xFFFFFFFF
PRODUCT_NAME: Final = "creditd"
DPA_WAIT_S: Final = 2.0
AUTHORIZE_ONLY: Final = 0
MAX_UNANSWERED: Final = 1024
KNOWN_RESULTS: Final = frozenset(int(result) for result in Result)
# What a connection waits for when it reads, each named by the close its deadline's expiry causes
# (the watchdog's sends a DWR first).
WAITING_FOR_CER: Final = "handshake_timeout"
WAITING_FOR_MESSAGE: Final = "watchdog"
INSIDE_MESSAGE: Final = "stalled_message"

# Serves one accepted request of an Open connection: (request, peer's Origin-Host) -> its answer.
Handler = Callable[[Message, str], Awaitable[Message]]


class Closed(Exception):
    """The connection is to be closed; `reason` labels the close."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


CCR_LABELS: Final = {1: "CCR-I", 2: "CCR-U", 3: "CCR-T", 4: "CCR-E"}
BASE_LABELS: Final = {
    int(Command.CAPABILITIES_EXCHANGE): "CER",
    int(Command.DEVICE_WATCHDOG): "DWR",
    int(Command.DISCONNECT_PEER): "DPR",
}


def command_label(message: Message) -> str:
    if message.command == Command.CREDIT_CONTROL:
        kind = message.first(Code.CC_REQUEST_TYPE)
        return CCR_LABELS.get(kind.value if kind and isinstance(kind.value, int) else 0, "CCR")
    return BASE_LABELS.get(message.command, "other")


def _salvaged(data: bytes) -> Message:
    """A refused message's header and, when its first AVP is a sane Session-Id, that AVP."""
    header = decode_header(data)
    message = Message(header.command, header.application, header.flags, header.hop_by_hop, header.end_to_end)
    if len(data) >= HEADER_BYTES + 8:
        code, flags_length = struct.unpack_from(">II", data, HEADER_BYTES)
        length = flags_length & 0xFFFFFF
        if code == Code.SESSION_ID and 8 < length <= len(data) - HEADER_BYTES and not flags_length >> 24 & 0x80:
            with contextlib.suppress(UnicodeDecodeError):
                message.avps.append(make(Code.SESSION_ID, data[HEADER_BYTES + 8 : HEADER_BYTES + length].decode()))
    return message


def _write_high_water_bytes(transport: asyncio.BaseTransport) -> int:
    """How much a transport buffers before it pauses its writers; 0 where it cannot say (every send
    then waits on drain)."""
    try:
        return int(transport.get_write_buffer_limits()[1])  # type: ignore[attr-defined]
    except (AttributeError, NotImplementedError):
        return 0


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: DiameterSettings,
        origin_state_id: int,
        handler: Handler,
        certificate_names: frozenset[str] | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.settings = settings
        self.origin_state_id = origin_state_id
        self.handler = handler
        # TLS: the verified certificate's identities, one of which the CER's Origin-Host must be.
        self.certificate_names = certificate_names
        self.peer_host = ""
        self.peer_realm = ""
        self.label = metrics.UNKNOWN_PEER
        # hop-by-hop id of each RAR/ASR sent -> its command label, until answered (bounded)
        self._asked: dict[int, str] = {}
        self.allowed = {(peer.origin_host, peer.origin_realm) for peer in settings.peers}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_in_flight_per_connection)
        self._watchdog_pending = False
        self._closed = asyncio.Event()
        # made on the loop that accepted the connection; its clock looked up once (3.11's
        # get_running_loop() makes a system call)
        loop = asyncio.get_running_loop()
        self._now = loop.time
        self._read_deadline = ReadDeadline(
            loop, min(settings.handshake_timeout_s, settings.watchdog_interval_s), self._read_expired
        )
        self._waiting_for = WAITING_FOR_CER
        self._write_high_water_bytes = _write_high_water_bytes(writer.transport)
        self._close_reason = ""  # set by what closed the connection from outside the reading loop
        self._next_id = int(time.time()) << 20

    # ------------------------------------------------------------------------------------ wire

    async def _send(self, message: Message) -> None:
        self.writer.write(encode(message))
        if self.writer.transport.get_write_buffer_size() <= self._write_high_water_bytes:
            return  # drain() would return at once; its time-out's timer costs more than the write
        try:
            async with asyncio.timeout(self.settings.write_timeout_s):
                await self.writer.drain()
        except TimeoutError:
            self._close("slow_reader")
            raise Closed("slow_reader") from None

    def _close(self, reason: str) -> None:
        """Closes the connection from outside the reading loop, whose read then fails: its Closed
        carries this reason."""
        self._close_reason = self._close_reason or reason
        self.writer.transport.abort()

    async def _read(self, waiting_for: str, timeout_s: float) -> Message | None:
        """The next message within timeout_s, or None for one refused (and answered); raises Closed
        (when the deadline passes, with the reason `waiting_for` names)."""
        deadline, now = self._read_deadline, self._now
        self._waiting_for = waiting_for
        deadline.set(now() + timeout_s)
        try:
            head = await self.reader.readexactly(HEADER_BYTES)
        except asyncio.IncompleteReadError:
            raise Closed(self._close_reason or "peer") from None
        self._waiting_for = INSIDE_MESSAGE
        deadline.set(now() + self.settings.handshake_timeout_s)
        try:
            header = check_header(head, self.settings.max_message_bytes)
        except DiameterError as error:
            log.warning("diameter peer %s: %s: closing", self.label, error.message)
            if head[4] & FLAG_REQUEST:
                await self._send(refusal(_salvaged(head), self.settings, error))
            raise Closed("oversize" if error.result == Result.INVALID_MESSAGE_LENGTH else "bad_header") from None
        try:
            rest = await self.reader.readexactly(header.length - HEADER_BYTES)
        except asyncio.IncompleteReadError:
            raise Closed(self._close_reason or INSIDE_MESSAGE) from None
        deadline.clear()
        data = head + rest
        try:
            return decode(data, self.settings.max_message_bytes, self.settings.max_avp_depth)
        except DiameterError as error:
            log.info("diameter peer %s: refused a message: %s", self.label, error.message)
            if not head[4] & FLAG_REQUEST:
                raise Closed("bad_answer") from None
            salvaged = _salvaged(data)
            metrics.REQUESTS.labels(self.label, command_label(salvaged), str(error.result)).inc()
            await self._send(refusal(salvaged, self.settings, error))
            return None

    # ------------------------------------------------------------------------------------ handshake

    def _capabilities(self) -> list[Avp]:
        host = self.writer.get_extra_info("sockname")[0]
        address = (b"\0\2" if ":" in host else b"\0\1") + ipaddress.ip_address(host).packed
        return [
            make(Code.HOST_IP_ADDRESS, address),
            make(Code.VENDOR_ID, 0),
            make(Code.PRODUCT_NAME, PRODUCT_NAME),
            make(Code.ORIGIN_STATE_ID, self.origin_state_id),
            make(Code.SUPPORTED_VENDOR_ID, VENDOR_3GPP),
            make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION),
            make(
                Code.VENDOR_SPECIFIC_APPLICATION_ID,
                [make(Code.VENDOR_ID, VENDOR_3GPP), make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION)],
            ),
        ]

    @staticmethod
    def _offers_credit_control(cer: Message) -> bool:
        offered = [avp.value for avp in cer.all(Code.AUTH_APPLICATION_ID)]
        for vsai in cer.all(Code.VENDOR_SPECIFIC_APPLICATION_ID):
            offered += [avp.value for avp in vsai.children(Code.AUTH_APPLICATION_ID)]
        return CREDIT_CONTROL_APPLICATION in offered or RELAY_APPLICATION in offered

    def _read_expired(self) -> None:
        """The read deadline passed: the connection is closed, but a first silence in the open state
        gets a DWR and another watchdog_interval_s (RFC 3539)."""
        if self._waiting_for == WAITING_FOR_MESSAGE:
            if not self._watchdog_pending:
                self._watchdog_pending = True
                self._read_deadline.set(self._now() + self.settings.watchdog_interval_s)
                self._track(asyncio.create_task(self._probe()))
                return
            metrics.WATCHDOG_FAILURES.labels(self.label).inc()
        self._close(self._waiting_for)

    async def _probe(self) -> None:
        with contextlib.suppress(Closed, ConnectionError, OSError):  # the reading loop sees the close
            await self._send(
                self._request(Command.DEVICE_WATCHDOG, 0, [make(Code.ORIGIN_STATE_ID, self.origin_state_id)])
            )

    def _track(self, task: asyncio.Task[None]) -> None:
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _handshake(self) -> None:
        cer = await self._read(WAITING_FOR_CER, self.settings.handshake_timeout_s)
        if cer is None or cer.command != Command.CAPABILITIES_EXCHANGE or not cer.is_request:
            raise Closed("no_cer")
        host, realm = text(cer.first(Code.ORIGIN_HOST)), text(cer.first(Code.ORIGIN_REALM))
        if (host, realm) not in self.allowed or (
            self.certificate_names is not None and host not in self.certificate_names
        ):
            log.warning("diameter: CER from unknown peer %r realm %r refused", host, realm)
            await self._answer_cer(cer, Result.UNKNOWN_PEER, error=True)
            raise Closed("unknown_peer")
        if not self._offers_credit_control(cer):
            await self._answer_cer(cer, Result.NO_COMMON_APPLICATION, error=False)
            raise Closed("no_common_application")
        self.peer_host, self.peer_realm, self.label = host, realm, host
        await self._answer_cer(cer, Result.SUCCESS, error=False)
        metrics.CONNECTIONS.labels(self.label).inc()
        log.info("diameter peer %s (realm %s) open", host, realm)

    async def _answer_cer(self, cer: Message, result: Result, error: bool) -> None:
        metrics.REQUESTS.labels(self.label, "CER", str(int(result))).inc()
        await self._send(cer.answer(base_answer(cer, self.settings, result) + self._capabilities(), error=error))

    # ------------------------------------------------------------------------------------ open state

    async def run(self) -> None:
        reason = "peer"
        try:
            await self._handshake()
            try:
                await self._serve()
            finally:
                metrics.CONNECTIONS.labels(self.label).dec()
        except Closed as closed:
            reason = closed.reason
        except (ConnectionError, OSError) as error:
            reason = self._close_reason or "connection_error"
            log.info("diameter peer %s: %s", self.label, error)
        finally:
            self._read_deadline.stop()
            if reason == "disconnected" and self._in_flight:  # DPR/DPA: answer what was asked first
                await asyncio.wait(set(self._in_flight), timeout=self.settings.drain_timeout_s)
            for task in self._in_flight:
                task.cancel()
            metrics.CLOSED.labels(reason).inc()
            if reason not in ("peer", "disconnected"):
                log.warning("diameter peer %s: connection closed (%s)", self.label, reason)
            self.writer.transport.abort()
            self._closed.set()

    async def _serve(self) -> None:
        while True:
            message = await self._read(WAITING_FOR_MESSAGE, self.settings.watchdog_interval_s)
            self._watchdog_pending = False
            if message is None:
                continue
            if not message.is_request:
                if message.command == Command.DISCONNECT_PEER:
                    raise Closed("disconnected")
                self._answered(message)  # DWA, RAA, ASA: traffic is all the watchdog needs
                continue
            if message.command == Command.DISCONNECT_PEER:
                await self._send(message.answer(base_answer(message, self.settings, Result.SUCCESS)))
                metrics.REQUESTS.labels(self.label, "DPR", str(int(Result.SUCCESS))).inc()
                raise Closed("disconnected")
            if message.command == Command.DEVICE_WATCHDOG:
                avps = base_answer(message, self.settings, Result.SUCCESS)
                await self._send(message.answer([*avps, make(Code.ORIGIN_STATE_ID, self.origin_state_id)]))
                metrics.REQUESTS.labels(self.label, "DWR", str(int(Result.SUCCESS))).inc()
                continue
            await self._slots.acquire()
            self._track(asyncio.create_task(self._serve_request(message)))
            # A read of a message already buffered does not wait: without a turn of the loop here, a
            # burst would be read whole before its first request reaches Redis.
            await asyncio.sleep(0)

    async def _serve_request(self, request: Message) -> None:
        started = time.perf_counter()
        command = command_label(request)
        try:
            answer = await self._answer(request)
            await self._send(answer)
            result = answer.first(Code.RESULT_CODE)
            metrics.REQUESTS.labels(self.label, command, str(result.value if result else 0)).inc()
            metrics.REQUEST_DURATION.labels(self.label, command).observe(time.perf_counter() - started)
        except (Closed, ConnectionError, OSError):
            self.writer.transport.abort()
        except Exception:  # our bug: say so, and let the client retransmit (the same ids are safe)
            log.exception("diameter peer %s: %s failed", self.label, command)
            error = DiameterError(Result.UNABLE_TO_COMPLY, "internal error; retransmit")
            with contextlib.suppress(Closed, ConnectionError, OSError):
                await self._send(refusal(request, self.settings, error))
        finally:
            self._slots.release()

    async def _answer(self, request: Message) -> Message:
        if request.command == Command.CAPABILITIES_EXCHANGE:
            error = DiameterError(Result.INVALID_HDR_BITS, "CER on an open connection")  # RFC 6733 §5.3
        elif request.command != Command.CREDIT_CONTROL:
            error = DiameterError(Result.COMMAND_UNSUPPORTED, f"command {request.command}: not supported")
        elif request.application != CREDIT_CONTROL_APPLICATION:
            error = DiameterError(Result.APPLICATION_UNSUPPORTED, f"application {request.application}: only 4")
        else:
            return await self.handler(request, self.peer_host)
        return refusal(request, self.settings, error)

    def _request(self, command: Command, application: int, avps: list[Avp]) -> Message:
        self._next_id += 1
        head = [make(Code.ORIGIN_HOST, self.settings.origin_host), make(Code.ORIGIN_REALM, self.settings.origin_realm)]
        return Message(
            command, application, FLAG_REQUEST, self._next_id & 0xFFFFFFFF, self._next_id & 0xFFFFFFFF, head + avps
        )

    # ------------------------------------------------------------------------------------ server-initiated

    async def ask_peer(self, command: Command, session_id: str) -> None:
        """Sends a Re-Auth-Request (AUTHORIZE_ONLY) or an Abort-Session-Request for one session; its
        answer is counted when it comes (creditd_diameter_server_requests_total)."""
        label = "RAR" if command == Command.RE_AUTH else "ASR"
        avps = [
            make(Code.DESTINATION_REALM, self.peer_realm),
            make(Code.DESTINATION_HOST, self.peer_host),
            make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION),
        ]
        if command == Command.RE_AUTH:
            avps.append(make(Code.RE_AUTH_REQUEST_TYPE, AUTHORIZE_ONLY))
        message = self._request(command, CREDIT_CONTROL_APPLICATION, avps)
        message.avps.insert(0, make(Code.SESSION_ID, session_id))
        if len(self._asked) >= MAX_UNANSWERED:
            self._asked.pop(next(iter(self._asked)))
        self._asked[message.hop_by_hop] = label
        await self._send(message)
        metrics.SERVER_REQUESTS.labels(self.label, label, "sent").inc()

    def _answered(self, answer: Message) -> None:
        label = self._asked.pop(answer.hop_by_hop, None)
        if label is not None:
            found = answer.first(Code.RESULT_CODE)
            code = found.value if found is not None and isinstance(found.value, int) else 0
            # The peer chooses this value: only standard codes become label values.
            outcome = str(code) if code in KNOWN_RESULTS else "other"
            metrics.SERVER_REQUESTS.labels(self.label, label, outcome).inc()

    # ------------------------------------------------------------------------------------ shutdown

    async def drain(self, timeout_s: float) -> None:
        """Answers what is in flight (within timeout_s), then DPR; closes on DPA or after a short wait."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout_s)
        if self.peer_host and not self._closed.is_set():
            with contextlib.suppress(Closed, ConnectionError, OSError):
                await self._send(
                    self._request(Command.DISCONNECT_PEER, 0, [make(Code.DISCONNECT_CAUSE, DISCONNECT_REBOOTING)])
                )
                await asyncio.wait_for(self._closed.wait(), DPA_WAIT_S)
        self.writer.transport.abort()
