"""A deliberately simple in-memory model of one prepaid account on the sample plan `standard`, written from
docs/design.md and the plan (docs/configuration.md, "The sample plan"), not from the Lua: money, status with the
suspension ladder, sms_50 buckets with expiry (serving at home only), top-up keys, emergency credit
(emergency_10, recovered from top-ups), bonus money (the property test's top-up rule: 50 % of a top-up
of 10.00 or more, for 5 days, paying any usage at home before main money; one bonus bucket per
reservation; never bundles or credit), a shared wallet for some accounts (the property test's group: a
refill of 10.00 whenever available money is below it, from a group of 50.00, at most 20.00 a billing
cycle, tried at a sweeper pass and again a minute after one that gave nothing; own money spent first),
incoming calls (terminating: free at home and served one-way suspended however deep the debt, priced
roaming), and the rating of calls and SMS by destination (Thai, international, none), zone (home,
roaming) and Bangkok time band (night 22:00-07:00, UTC+7 all year), with the tariff time change of a
call that crosses a band edge. The property test drives creditd and this model with the same random
operations and compares them after each one."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.calendar_model import billing_cycle_of

DAY_MS = 86_400_000
VOICE_BLOCK_S = 60
SMS_BUNDLE_PRICE, SMS_BUNDLE_SIZE, BUNDLE_VALIDITY_MS = 1_900, 50, 30 * DAY_MS
ONE_WAY_GRACE_MS, TWO_WAY_GRACE_MS, LATE_FEE = 7 * DAY_MS, 30 * DAY_MS, 2_000
ACTIVE, ONE_WAY, TWO_WAY, TERMINATED = 1, 2, 3, 4
BANGKOK_OFFSET_MS, MINUTE_MS = 7 * 3_600_000, 60_000
NIGHT_FROM_MINUTE, NIGHT_UNTIL_MINUTE = 22 * 60, 7 * 60
VOICE_GRANT_VALIDITY_MS = 600_000
# (destination, zone) -> price per unit; "band": 100 by day, 50 by night. No entry: not rated.
VOICE_PRICES: dict[tuple[str, str], int | str] = {("thai", "home"): "band", ("international", "home"): 900}
SMS_PRICES = {("thai", "home"): 50, ("international", "home"): 300}
ROAMING_VOICE_PRICE, ROAMING_SMS_PRICE = 1_500, 300
# Incoming calls (terminating: served one-way suspended): free at home, priced roaming.
VOICE_IN_PRICES = {"home": 0, "roaming": 500}
LOAN, LOAN_FEE, LOAN_MAX_OWED = 1_000, 100, 1_100  # the loan offer emergency_10
BONUS_MIN_TOP_UP, BONUS_PERCENT, BONUS_VALIDITY_MS = 1_000, 50, 5 * DAY_MS
GROUP_BALANCE, GROUP_CAP, GROUP_REFILL, GROUP_RETRY_MS = 5_000, 2_000, 1_000, 60_000


def is_night(instant_ms: int) -> bool:
    minute = (instant_ms + BANGKOK_OFFSET_MS) % DAY_MS // MINUTE_MS
    return minute >= NIGHT_FROM_MINUTE or minute < NIGHT_UNTIL_MINUTE


def voice_price(destination: str, zone: str, instant_ms: int) -> int | None:
    if zone == "roaming":
        return ROAMING_VOICE_PRICE
    price = VOICE_PRICES.get((destination, zone))
    if price == "band":
        return 50 if is_night(instant_ms) else 100
    assert price is None or isinstance(price, int)
    return price


def sms_price(destination: str, zone: str) -> int | None:
    return ROAMING_SMS_PRICE if zone == "roaming" else SMS_PRICES.get((destination, zone))


def band_edge_within(start_ms: int, end_ms: int) -> int:
    """The first 07:00 or 22:00 Bangkok time strictly between the two instants; 0 when none."""
    local_day_ms = (start_ms + BANGKOK_OFFSET_MS) // DAY_MS * DAY_MS - BANGKOK_OFFSET_MS
    edges = sorted(
        local_day_ms + days * DAY_MS + minute * MINUTE_MS
        for days in (0, 1)
        for minute in (NIGHT_UNTIL_MINUTE, NIGHT_FROM_MINUTE)
    )
    return next((edge for edge in edges if start_ms < edge < end_ms), 0)


def used_after_change(start_ms: int, used_s: int, change_ms: int) -> int:
    """Seconds of a call started at start_ms and lasting used_s that fall after change_ms."""
    if change_ms == 0:
        return 0
    return min(used_s, max(0, -(-(start_ms + used_s * 1000 - change_ms) // 1000)))


@dataclass
class SmsBucket:
    remaining: int
    expires_at_ms: int


@dataclass
class BonusBucket:
    bucket_id: str
    remaining: int
    expires_at_ms: int


@dataclass
class GroupShare:
    """The member's shared wallet: the group's balance, the member's cap and allocation per cycle."""

    cycle_day: int
    balance: int = GROUP_BALANCE
    allocated: int = 0
    cycle: int = -1
    tried_ms: int = 0


@dataclass
class Model:
    balance: int
    now_ms: int
    status: int = ACTIVE
    reason: str = "CREATED"
    since_ms: int = 0
    buckets: list[SmsBucket] = field(default_factory=list)
    top_up_keys: dict[str, int] = field(default_factory=dict)
    # Emergency credit: the sample plan's emergency_10 (10.00 lent, 1.00 fee, 11.00 owed at most).
    loan_outstanding: int = 0
    borrow_keys: set[str] = field(default_factory=set)
    bonuses: list[BonusBucket] = field(default_factory=list)
    group: GroupShare | None = None
    # Of the balance, what the group handed over and is not spent yet (own money is spent first).
    group_holding: int = 0

    def __post_init__(self) -> None:
        self.since_ms = self.now_ms
        self._check_exhaustion()

    def _set(self, status: int, reason: str, at_ms: int) -> None:
        self.status, self.reason, self.since_ms = status, reason, at_ms

    def _debit(self, amount: int) -> None:
        self.balance -= amount
        self.group_holding = min(self.group_holding, max(self.balance, 0))

    def sweep(self) -> None:
        """A sweeper pass: the ladder's due steps, then a refill from the group if the member wants one."""
        self.apply_ladder()
        group = self.group
        if group is None or self.status == TERMINATED or self.balance >= GROUP_REFILL:
            return
        if self.now_ms < group.tried_ms + GROUP_RETRY_MS:
            return
        group.tried_ms = self.now_ms
        cycle = billing_cycle_of(self.now_ms, group.cycle_day)
        allocated = group.allocated if group.cycle == cycle else 0
        granted = max(0, min(GROUP_REFILL, group.balance, GROUP_CAP - allocated))
        if granted:
            group.balance -= granted
            group.allocated, group.cycle, group.tried_ms = allocated + granted, cycle, 0
            self.balance += granted
            self.group_holding = min(self.group_holding + granted, max(self.balance, 0))
            self._resume("GROUP")

    def _check_exhaustion(self) -> None:
        if self.status == ACTIVE and self.balance <= 0:
            self._set(ONE_WAY, "CREDIT", self.now_ms)

    def advance(self, seconds: int) -> None:
        self.now_ms += seconds * 1000
        self.buckets = [b for b in self.buckets if b.expires_at_ms > self.now_ms]
        self.bonuses = [b for b in self.bonuses if b.expires_at_ms > self.now_ms]

    def serving_bonuses(self, zone: str) -> list[BonusBucket]:
        """Bonus buckets with money left that pay for usage in the zone now, in consumption order."""
        if zone != "home":
            return []
        live = [b for b in self.bonuses if b.remaining > 0 and b.expires_at_ms > self.now_ms]
        return sorted(live, key=lambda b: (b.expires_at_ms, b.bucket_id))

    def pay(self, cost: int, zone: str, own: BonusBucket | None = None) -> None:
        """Bonus money first (`own`: the bucket the reservation held, even if expired since), then main."""
        for bucket in ([own] if own else []) + self.serving_bonuses(zone):
            taken = min(cost, bucket.remaining)
            bucket.remaining -= taken
            cost -= taken
        self._debit(cost)

    def apply_ladder(self) -> None:
        """What the next request (or the sweeper) applies first: steps dated when they fell due."""
        for _ in range(2):
            if self.reason != "CREDIT" or self.balance > 0:
                return
            if self.status == ONE_WAY and self.now_ms >= self.since_ms + ONE_WAY_GRACE_MS:
                self._set(TWO_WAY, "CREDIT", self.since_ms + ONE_WAY_GRACE_MS)
                self._debit(LATE_FEE)
            elif self.status == TWO_WAY and self.now_ms >= self.since_ms + TWO_WAY_GRACE_MS:
                self._set(TERMINATED, "CREDIT", self.since_ms + TWO_WAY_GRACE_MS)
            else:
                return

    def top_up(self, amount: int, key: str, seq: int = 0) -> str:
        """'applied', 'replayed', 'conflict' (key reused with another amount) or 'terminated'. seq: the
        top-up's ledger seq, which names its bonus bucket (the tie-break of two with one expiry)."""
        self.apply_ladder()
        if key in self.top_up_keys:
            return "replayed" if self.top_up_keys[key] == amount else "conflict"
        if self.status == TERMINATED:
            return "terminated"
        self.top_up_keys[key] = amount
        recovered = min(self.loan_outstanding, amount)  # loans are paid back first, from the top-up
        self.balance += amount - recovered
        self.loan_outstanding -= recovered
        if amount >= BONUS_MIN_TOP_UP:
            bonus = amount * BONUS_PERCENT // 100
            self.bonuses.append(BonusBucket(f"bonus:{seq}", bonus, self.now_ms + BONUS_VALIDITY_MS))
        self._resume("TOPUP")
        return "applied"

    def _resume(self, reason: str) -> None:
        if self.status in (ONE_WAY, TWO_WAY) and self.reason == "CREDIT" and self.balance > 0:
            self._set(ACTIVE, reason, self.now_ms)

    def borrow(self, key: str) -> str:
        """'applied', 'replayed' or 'refused' (suspended both ways, closed, or owing the most already)."""
        self.apply_ladder()
        if key in self.borrow_keys:
            return "replayed"
        if self.status in (TWO_WAY, TERMINATED) or self.loan_outstanding + LOAN + LOAN_FEE > LOAN_MAX_OWED:
            return "refused"
        self.borrow_keys.add(key)
        self.balance += LOAN
        self.loan_outstanding += LOAN + LOAN_FEE
        self._resume("LOAN")
        return "applied"

    def send_sms(self, destination: str = "thai", zone: str = "home") -> int:
        """Money charged, or -1 when refused."""
        self.apply_ladder()
        price = sms_price(destination, zone)
        if self.status != ACTIVE or price is None:
            return -1
        usable = sorted((b for b in self.buckets if b.remaining > 0), key=lambda b: b.expires_at_ms)
        if usable and zone == "home":
            usable[0].remaining -= 1
            return 0
        if max(self.balance, 0) + sum(b.remaining for b in self.serving_bonuses(zone)) < price:
            return -1
        self.pay(price, zone)
        self._check_exhaustion()
        return price

    def buy_sms_bundle(self) -> bool:
        self.apply_ladder()
        if self.status != ACTIVE or self.balance - SMS_BUNDLE_PRICE <= 0:
            return False
        self._debit(SMS_BUNDLE_PRICE)
        self.buckets.append(SmsBucket(SMS_BUNDLE_SIZE, self.now_ms + BUNDLE_VALIDITY_MS))
        return True

    def call(
        self, used_s: int, destination: str = "thai", zone: str = "home", spans: bool = False, updated: bool = False
    ) -> tuple[int, int]:
        """A voice call: INITIAL, then TERMINATE with used_s, either at once or (spans) used_s later
        with the part after the grant's tariff time change reported, or (updated, not spans) an UPDATE
        reporting half of it and the TERMINATE the rest, each report rated in whole blocks. Returns the
        money charged and the grant's tariff_time_change_ms, or (-1, 0) when not granted."""
        self.apply_ladder()
        price = voice_price(destination, zone, self.now_ms)
        if self.status != ACTIVE or price is None:
            return -1, 0
        change_ms = band_edge_within(self.now_ms, self.now_ms + VOICE_GRANT_VALIDITY_MS)
        price_after = voice_price(destination, zone, change_ms) if change_ms else price
        assert price_after is not None
        if price_after == price:
            change_ms = 0
        held = next(iter(self.serving_bonuses(zone)), None)  # one bonus bucket per reservation
        if max(self.balance, 0) + (held.remaining if held else 0) < max(price, price_after):
            return -1, 0  # a grant reserves for the dearer side
        if updated and not spans:
            reported = used_s // 2
            self.pay(-(-reported // VOICE_BLOCK_S) * price, zone, held)
            self._check_exhaustion()
            cost = -(-(used_s - reported) // VOICE_BLOCK_S) * price
            self.pay(cost, zone)
            self._check_exhaustion()
            return -(-reported // VOICE_BLOCK_S) * price + cost, change_ms
        after_s = used_after_change(self.now_ms, used_s, change_ms) if spans else 0
        if spans:
            self.advance(used_s)
        cost = -(-(used_s - after_s) // VOICE_BLOCK_S) * price + -(-after_s // VOICE_BLOCK_S) * price_after
        self.pay(cost, zone, held)
        self._check_exhaustion()
        return cost, change_ms

    def receive(self, used_s: int, zone: str = "home") -> int:
        """An incoming call: INITIAL, then TERMINATE with used_s. Returns the money charged, or -1 when
        not granted. Terminating: served one-way suspended, and free at home even deep in debt."""
        self.apply_ladder()
        price = VOICE_IN_PRICES[zone]
        if self.status in (TWO_WAY, TERMINATED):
            return -1
        if price and max(self.balance, 0) < price:  # bonus money serves at home only, where this is free
            return -1
        cost = -(-used_s // VOICE_BLOCK_S) * price
        self.pay(cost, zone)
        self._check_exhaustion()
        return cost

    @property
    def sms_left(self) -> int:
        return sum(b.remaining for b in self.buckets)

    @property
    def bonus_left(self) -> int:
        return sum(b.remaining for b in self.bonuses)
