"""A deliberately simple in-memory model of one prepaid account on the sample plan `standard`, written
from docs/design.md and the plan, not from the Lua: money, status with the suspension ladder, sms_50
buckets with expiry, top-up keys. The property test drives creditd and this model with the same
random operations and compares them after each one."""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 86_400_000
SMS_PRICE, VOICE_BLOCK_PRICE, VOICE_BLOCK_S, VOICE_DEFAULT_S = 50, 100, 60, 300
SMS_BUNDLE_PRICE, SMS_BUNDLE_SIZE, BUNDLE_VALIDITY_MS = 1_900, 50, 30 * DAY_MS
ONE_WAY_GRACE_MS, TWO_WAY_GRACE_MS, LATE_FEE = 7 * DAY_MS, 30 * DAY_MS, 2_000
ACTIVE, ONE_WAY, TWO_WAY, TERMINATED = 1, 2, 3, 4


@dataclass
class SmsBucket:
    remaining: int
    expires_at_ms: int


@dataclass
class Model:
    balance: int
    now_ms: int
    status: int = ACTIVE
    reason: str = "CREATED"
    since_ms: int = 0
    buckets: list[SmsBucket] = field(default_factory=list)
    top_up_keys: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.since_ms = self.now_ms
        self._check_exhaustion()

    def _set(self, status: int, reason: str, at_ms: int) -> None:
        self.status, self.reason, self.since_ms = status, reason, at_ms

    def _check_exhaustion(self) -> None:
        if self.status == ACTIVE and self.balance <= 0:
            self._set(ONE_WAY, "CREDIT", self.now_ms)

    def advance(self, seconds: int) -> None:
        self.now_ms += seconds * 1000
        self.buckets = [b for b in self.buckets if b.expires_at_ms > self.now_ms]

    def apply_ladder(self) -> None:
        """What the next request (or the sweeper) applies first: steps dated when they fell due."""
        for _ in range(2):
            if self.reason != "CREDIT" or self.balance > 0:
                return
            if self.status == ONE_WAY and self.now_ms >= self.since_ms + ONE_WAY_GRACE_MS:
                self._set(TWO_WAY, "CREDIT", self.since_ms + ONE_WAY_GRACE_MS)
                self.balance -= LATE_FEE
            elif self.status == TWO_WAY and self.now_ms >= self.since_ms + TWO_WAY_GRACE_MS:
                self._set(TERMINATED, "CREDIT", self.since_ms + TWO_WAY_GRACE_MS)
            else:
                return

    def top_up(self, amount: int, key: str) -> str:
        """'applied', 'replayed', 'conflict' (key reused with another amount) or 'terminated'."""
        self.apply_ladder()
        if key in self.top_up_keys:
            return "replayed" if self.top_up_keys[key] == amount else "conflict"
        if self.status == TERMINATED:
            return "terminated"
        self.top_up_keys[key] = amount
        self.balance += amount
        if self.status in (ONE_WAY, TWO_WAY) and self.reason == "CREDIT" and self.balance > 0:
            self._set(ACTIVE, "TOPUP", self.now_ms)
        return "applied"

    def send_sms(self) -> int:
        """Money charged, or -1 when refused."""
        self.apply_ladder()
        if self.status != ACTIVE:
            return -1
        usable = sorted((b for b in self.buckets if b.remaining > 0), key=lambda b: b.expires_at_ms)
        if usable:
            usable[0].remaining -= 1
            return 0
        if self.balance < SMS_PRICE:
            return -1
        self.balance -= SMS_PRICE
        self._check_exhaustion()
        return SMS_PRICE

    def buy_sms_bundle(self) -> bool:
        self.apply_ladder()
        if self.status != ACTIVE or self.balance - SMS_BUNDLE_PRICE <= 0:
            return False
        self.balance -= SMS_BUNDLE_PRICE
        self.buckets.append(SmsBucket(SMS_BUNDLE_SIZE, self.now_ms + BUNDLE_VALIDITY_MS))
        return True

    def call(self, used_s: int) -> int:
        """A voice call (INITIAL then TERMINATE with used_s): money charged, or -1 when not granted."""
        self.apply_ladder()
        if self.status != ACTIVE or self.balance < VOICE_BLOCK_PRICE:
            return -1
        cost = -(-used_s // VOICE_BLOCK_S) * VOICE_BLOCK_PRICE
        self.balance -= cost
        self._check_exhaustion()
        return cost

    @property
    def sms_left(self) -> int:
        return sum(b.remaining for b in self.buckets)
