"""The console's own records, in one SQLite file: staff accounts (argon2 password hashes, TOTP secrets,
a role), their sign-in sessions, requests waiting for a supervisor (adjustments and gifts above the
threshold, blacklistings), and the staff audit log (with the creditd ledger seq an action wrote).

The audit log is append-only: SQLite triggers abort any UPDATE or DELETE of it, and the console has no
page that would try; it records who, when, what, why and from where for every sign-in and action.
Session tokens are stored hashed (SHA-256), so a copy of the file signs no one in. Money and balances
are not here: they stay in creditd, reached over gRPC.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Literal, NamedTuple

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["agent", "supervisor", "auditor"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "auditor")
STAFF_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
MAX_LISTED = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, totp_secret TEXT NOT NULL,
    last_totp_step INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL REFERENCES staff(name), expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, amount_minor INTEGER NOT NULL,
    reason TEXT NOT NULL, requested_by TEXT NOT NULL, requested_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', decided_by TEXT, decided_ms INTEGER,
    action TEXT NOT NULL DEFAULT 'adjust', subject TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, staff TEXT NOT NULL,
    action TEXT NOT NULL, account_id TEXT NOT NULL, detail TEXT NOT NULL, reason TEXT NOT NULL,
    address TEXT NOT NULL, ledger_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS audit_by_staff ON audit (staff, time_ms);
CREATE INDEX IF NOT EXISTS audit_by_account ON audit (account_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the staff audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the staff audit log is append-only'); END;
"""
# Columns added since the first schema: a file made before them gets them (ADD COLUMN, not an UPDATE).
ADDED_COLUMNS = (
    ("approvals", "action", "TEXT NOT NULL DEFAULT 'adjust'"),
    ("approvals", "subject", "TEXT NOT NULL DEFAULT ''"),
    ("audit", "ledger_seq", "INTEGER NOT NULL DEFAULT 0"),
)
# What waits for a second person: an adjustment above the threshold, a gift of a bundle whose price is
# above it (subject: the bundle), a blacklisting (subject: ADMIN or FRAUD, creditd's reason).
ApprovalAction = Literal["adjust", "gift", "blacklist"]
APPROVAL_FIELDS = "id, account_id, amount_minor, reason, requested_by, requested_ms, state, decided_by, action, subject"
AUDIT_FIELDS = "seq, time_ms, staff, action, account_id, detail, reason, address, ledger_seq"


class StaffError(Exception):
    """A refused staff operation; the message says why, for the person."""


class Staff(NamedTuple):
    name: str
    role: Role


class Approval(NamedTuple):
    id: int
    account_id: str
    amount_minor: int
    reason: str
    requested_by: str
    requested_ms: int
    state: str
    decided_by: str | None
    action: str
    subject: str


class AuditRow(NamedTuple):
    seq: int
    time_ms: int
    staff: str
    action: str
    account_id: str
    detail: str
    reason: str
    address: str
    # The creditd ledger entry the action wrote (0: none), so that the card shows the staff's reason.
    ledger_seq: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaffStore:
    def __init__(self, path: Path, session_ttl_s: int) -> None:
        self.session_ttl_s = session_ttl_s
        self._hasher = PasswordHasher()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        for table, column, declaration in ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        self._db.close()

    # -- staff accounts

    def add(self, name: str, role: str, password: str) -> str:
        """A new staff member; returns their TOTP secret (shown once, for their authenticator app)."""
        if not STAFF_NAME.fullmatch(name):
            raise StaffError("name: 2-32 of a-z 0-9 . _ -, starting with a letter")
        if role not in ROLES:
            raise StaffError(f"role: one of {', '.join(ROLES)}")
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise StaffError(f"password: {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
        secret = pyotp.random_base32()
        try:
            self._db.execute(
                "INSERT INTO staff (name, role, password_hash, totp_secret, created_ms) VALUES (?, ?, ?, ?, ?)",
                (name, role, self._hasher.hash(password), secret, _now_ms()),
            )
        except sqlite3.IntegrityError:
            raise StaffError(f"name: {name} exists already") from None
        return secret

    async def check_sign_in(self, name: str, password: str, code: str) -> Staff | None:
        """The staff member when the password and a TOTP code not used before are right, else None
        (the same answer whichever was wrong). argon2's work (tens of milliseconds, by design) runs in
        a thread, so the console keeps answering others meanwhile."""
        row = self._db.execute("SELECT role, password_hash, totp_secret FROM staff WHERE name = ?", (name,)).fetchone()
        password_hash = row[1] if row is not None else None
        if not await asyncio.to_thread(self._password_matches, password_hash, password) or row is None:
            return None
        role, _, secret = row
        step = self._totp_step(secret, code)
        if step is None:
            return None
        # Taken only if no sign-in took this code or a later one meanwhile (one ran beside this while
        # argon2 worked): a code is good once.
        taken = self._db.execute(
            "UPDATE staff SET last_totp_step = ? WHERE name = ? AND last_totp_step < ?", (step, name, step)
        ).rowcount
        return Staff(name, role) if taken == 1 else None

    def _password_matches(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None:
            self._hasher.hash(password)  # the same work as for a known name
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _totp_step(secret: str, code: str) -> int | None:
        """The 30-s step the code belongs to (this one or its neighbours, for clock drift), else None."""
        totp = pyotp.TOTP(secret)
        now_step = int(time.time()) // totp.interval
        for step in (now_step, now_step - 1, now_step + 1):
            if code.isdigit() and secrets.compare_digest(totp.at(step * totp.interval), code):
                return step
        return None

    # -- sessions

    def open_session(self, staff: Staff) -> str:
        token = secrets.token_urlsafe(32)
        expires_ms = _now_ms() + self.session_ttl_s * 1000
        self._db.execute("DELETE FROM sessions WHERE expires_ms < ?", (_now_ms(),))
        self._db.execute(
            "INSERT INTO sessions (token_hash, name, expires_ms) VALUES (?, ?, ?)",
            (_token_hash(token), staff.name, expires_ms),
        )
        return token

    def session(self, token: str) -> Staff | None:
        row = self._db.execute(
            "SELECT staff.name, staff.role FROM sessions JOIN staff ON staff.name = sessions.name "
            "WHERE token_hash = ? AND expires_ms > ?",
            (_token_hash(token), _now_ms()),
        ).fetchone()
        return Staff(row[0], row[1]) if row else None

    def close_session(self, token: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    # -- approvals (four eyes)

    def request_approval(
        self,
        account_id: str,
        amount_minor: int,
        reason: str,
        requested_by: str,
        action: ApprovalAction = "adjust",
        subject: str = "",
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO approvals (account_id, amount_minor, reason, requested_by, requested_ms, action, subject) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (account_id, amount_minor, reason, requested_by, _now_ms(), action, subject),
        )
        return int(cursor.lastrowid or 0)

    def approval(self, approval_id: int) -> Approval | None:
        row = self._db.execute(
            f"SELECT {APPROVAL_FIELDS} FROM approvals WHERE id = ?",
            (approval_id,),
        ).fetchone()
        return Approval(*row) if row else None

    def pending(self, account_id: str | None = None) -> list[Approval]:
        query = f"SELECT {APPROVAL_FIELDS} FROM approvals WHERE state = 'pending'"
        arguments: tuple[str, ...] = ()
        if account_id is not None:
            query += " AND account_id = ?"
            arguments = (account_id,)
        return [Approval(*row) for row in self._db.execute(query + f" ORDER BY id LIMIT {MAX_LISTED}", arguments)]

    def decidable(self, approval_id: int, decided_by: str) -> Approval:
        """The pending request, when decided_by may decide it: never its requester."""
        found = self.approval(approval_id)
        if found is None or found.state != "pending":
            raise StaffError("approval: no such pending request")
        if found.requested_by == decided_by:
            raise StaffError("approval: the requester cannot approve their own request (four eyes)")
        return found

    def decide(self, approval_id: int, decided_by: str, approve: bool) -> Approval:
        """Moves a pending request to approved or refused, once; the requester cannot decide it."""
        found = self.decidable(approval_id, decided_by)
        state = "approved" if approve else "refused"
        cursor = self._db.execute(
            "UPDATE approvals SET state = ?, decided_by = ?, decided_ms = ? WHERE id = ? AND state = 'pending'",
            (state, decided_by, _now_ms(), approval_id),
        )
        if cursor.rowcount != 1:
            raise StaffError("approval: decided by someone else meanwhile")
        return found._replace(state=state, decided_by=decided_by)

    # -- the staff audit log

    def record(
        self, staff: str, action: str, account_id: str, detail: str, reason: str, address: str, ledger_seq: int = 0
    ) -> None:
        self._db.execute(
            "INSERT INTO audit (time_ms, staff, action, account_id, detail, reason, address, ledger_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_now_ms(), staff, action, account_id, detail, reason, address, ledger_seq),
        )

    def recent_refusals(self, name: str, window_s: int) -> int:
        """Refused sign-ins of this name within the window (from the audit log)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM audit WHERE staff = ? AND action = 'sign-in refused' AND time_ms > ?",
            (name, _now_ms() - window_s * 1000),
        ).fetchone()
        return int(row[0])

    def audit_log(self, limit: int = 200) -> list[AuditRow]:
        rows = self._db.execute(
            f"SELECT {AUDIT_FIELDS} FROM audit ORDER BY seq DESC LIMIT ?", (min(limit, MAX_LISTED),)
        )
        return [AuditRow(*row) for row in rows]

    def audit_of_account(self, account_id: str, limit: int = 100) -> list[AuditRow]:
        """The staff's actions on one account, newest first."""
        rows = self._db.execute(
            f"SELECT {AUDIT_FIELDS} FROM audit WHERE account_id = ? ORDER BY seq DESC LIMIT ?",
            (account_id, min(limit, MAX_LISTED)),
        )
        return [AuditRow(*row) for row in rows]
