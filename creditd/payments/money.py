"""The calls payments make on accounts: read one, top it up, take a cancelled payment back, and ask
whether a keyed call was already made. Each is one Lua function call through an asyncio client of the
payments' own (outside the gRPC server's auto-pipeline)."""

from __future__ import annotations

from creditd.clock import Clock
from creditd.errors import CreditdError, NotFound
from creditd.store.account_record import read_account_async
from creditd.store.calls import Calls, Command
from creditd.store.connection import AnyRedis
from creditd.store.functions import call_all
from creditd.store.replies import (
    ACCOUNT_DECODER,
    ADJUST_DECODER,
    TOP_UP_DECODER,
    AccountRecord,
    Reply,
    TopUpRecord,
    as_text,
)

# Who the ledger names as having made the payments' calls.
ACTOR = "payments"


class NeedsReview(CreditdError):
    """A payment tried so long ago that whether its top-up happened can no longer be told."""


class Money:
    def __init__(self, client: AnyRedis, partitions: int, clock: Clock, key_retention_s: int = 7 * 86400) -> None:
        self.client = client
        self.calls = Calls(partitions)
        self.clock = clock
        # limits.topup_key_retention_s: how long top_up remembers a key
        self.key_retention_s = key_retention_s

    async def call(self, command: Command) -> Reply:
        """The function's reply; raises the creditd error its code stands for."""
        outcome = (await call_all(self.client, [command]))[0]
        if isinstance(outcome, CreditdError):
            raise outcome
        return outcome

    async def account(self, account_id: str) -> AccountRecord | None:
        try:
            reply = await self.call(self.calls.get_account(account_id, self.clock.now_ms()))
        except NotFound:
            return None
        return ACCOUNT_DECODER.decode(reply.body)

    async def top_up(self, account_id: str, amount_minor: int, channel: str, key: str) -> TopUpRecord:
        command = self.calls.top_up(account_id, amount_minor, channel, key, self.clock.now_ms(), ACTOR)
        return TOP_UP_DECODER.decode((await self.call(command)).body)

    async def top_up_once(
        self, account_id: str, amount_minor: int, channel: str, key: str, since_ms: int
    ) -> tuple[int, bool]:
        """top_up for a payment first tried at since_ms: (ledger seq, replayed). A first try old
        enough that top_up may have forgotten its key is looked for in the ledger first; when the
        ledger no longer reaches back that far, NeedsReview: a person must decide."""
        if self.clock.now_ms() - since_ms >= self.key_retention_s * 500:
            seq, reaches_back = await self._ledger_seq_of(account_id, f"{channel} {key}", since_ms)
            if seq:
                return seq, True
            if not reaches_back:
                raise NeedsReview(f"{channel} {key}: too old to tell whether it was applied: review it")
        record = await self.top_up(account_id, amount_minor, channel, key)
        return record.ledger_seq, bool(record.replayed)

    async def _ledger_seq_of(self, account_id: str, reference: str, since_ms: int) -> tuple[int, bool]:
        """The seq of the account's ledger entry with this reference (0: none kept), and whether
        the kept ledger reaches back to since_ms."""
        entries = await self.client.lrange(self.calls.keys.ledger(account_id), 0, -1)
        oldest_ms = None
        for raw in entries:
            seq, time_ms, _, _, _, _, _, entry_reference = as_text(raw).split("|", 7)
            oldest_ms = int(time_ms) if oldest_ms is None else min(oldest_ms, int(time_ms))
            if entry_reference == reference:
                return int(seq), True
        account = await read_account_async(self.client, self.calls.keys.account(account_id))
        trimmed = int(account.get("ledger_first_seq", "1")) > 1
        return 0, not trimmed or (oldest_ms is not None and oldest_ms <= since_ms)

    async def take_back(self, account_id: str, amount_minor: int, reason: str, key: str) -> int:
        """Debits a cancelled payment (an adjustment); its ledger seq."""
        command = self.calls.adjust(account_id, -amount_minor, reason, key, self.clock.now_ms(), ACTOR)
        return ADJUST_DECODER.decode((await self.call(command)).body).ledger_seq

    async def keyed_call_made(self, account_id: str, key: str) -> bool:
        """Whether a top-up or adjustment under this key is remembered (topup_key_retention_s)."""
        record = self.calls.keys.layout(("record",), account_id, idempotency_key=key)[0]
        return bool(await self.client.exists(record))
