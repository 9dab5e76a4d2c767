"""The calls payments make on accounts: read one, top it up, take a cancelled payment back, and ask
whether a keyed call was already made. Each is one Lua function call through an asyncio client of the
payments' own (outside the gRPC server's auto-pipeline)."""

from __future__ import annotations

from creditd.clock import Clock
from creditd.errors import CreditdError, NotFound
from creditd.store.calls import Calls, Command
from creditd.store.connection import AnyRedis
from creditd.store.functions import call_all
from creditd.store.replies import ACCOUNT_DECODER, ADJUST_DECODER, TOP_UP_DECODER, AccountRecord, Reply, TopUpRecord

# Who the ledger names as having made the payments' calls.
ACTOR = "payments"


class Money:
    def __init__(self, client: AnyRedis, partitions: int, clock: Clock) -> None:
        self.client = client
        self.calls = Calls(partitions)
        self.clock = clock

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

    async def take_back(self, account_id: str, amount_minor: int, reason: str, key: str) -> int:
        """Debits a cancelled payment (an adjustment); its ledger seq."""
        command = self.calls.adjust(account_id, -amount_minor, reason, key, self.clock.now_ms(), ACTOR)
        return ADJUST_DECODER.decode((await self.call(command)).body).ledger_seq

    async def keyed_call_made(self, account_id: str, key: str) -> bool:
        """Whether a top-up or adjustment under this key is remembered (topup_key_retention_s)."""
        record = self.calls.keys.layout(("record",), account_id, idempotency_key=key)[0]
        return bool(await self.client.exists(record))
