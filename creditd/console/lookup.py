"""Finding a subscriber from what they tell care: their number (as they say it), their name, a voucher
code they bought or a payment's reference. Reads creditd's Redis directly (the console's UsageSource
client), with plain reads only.

A number is one account. A voucher code (16 digits, its Luhn digit checked) names the account that
redeemed it (the voucher's claimed_by); a payment reference names the account of a PromptPay intent
(its own reference, 'CD…') or of a bank statement credit (the bank's servicer reference), both kept
for their retention. A name has no index in creditd: it is matched (case-insensitively, any part of
it) against the contact names of at most `scan_limit` accounts of one SCAN, and the page says so when
the scan stopped before the end.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from creditd.core.vouchers import code_hash, normalized
from creditd.errors import InvalidArgument
from creditd.payments.promptpay import intent_key
from creditd.payments.statements import reference_hash
from creditd.phone_numbers import account_id_of
from creditd.store.account_record import read_accounts
from creditd.store.calls import Calls
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import account_id_of as account_of_key
from creditd.store.keys import payments_key
from creditd.store.replies import as_text
from creditd.store.scan import account_keys

Way = Literal["number", "name", "voucher", "payment"]
WAYS: tuple[Way, ...] = ("number", "name", "voucher", "payment")
MAX_TYPED = 64
MIN_NAME = 2
MAX_FOUND = 50
SCAN_LIMIT = 100_000
SCAN_BATCH = 1000


class Found(NamedTuple):
    account_ids: list[str]
    # What the page says besides the list (why nothing, or that a name scan stopped early); empty: none.
    note: str = ""
    # The contact name of each account found by name, to choose from.
    names: dict[str, str] = {}


def by_voucher(client: AnySyncRedis, typed: str) -> Found:
    code = normalized(typed)  # InvalidArgument naming `code`
    claimed_by = as_text(client.hget(Calls.voucher_key(code_hash(code)), "claimed_by") or b"")
    if not claimed_by:
        return Found([], "No account has redeemed this voucher (or it is unknown).")
    return Found([claimed_by])


def by_payment_reference(client: AnySyncRedis, typed: str) -> Found:
    reference = typed.strip()
    if not reference or len(reference) > MAX_TYPED:
        raise InvalidArgument(f"reference: 1 to {MAX_TYPED} characters")
    found: list[str] = []
    for key in (intent_key(reference.upper()), payments_key("bank_entry", reference_hash(reference))):
        account_id = as_text(client.hget(key, "account_id") or b"")
        if account_id and account_id not in found:
            found.append(account_id)
    return Found(found, "" if found else "No payment with this reference is kept (or it matched no account).")


def by_name(client: AnySyncRedis, typed: str, scan_limit: int = SCAN_LIMIT) -> Found:
    wanted = " ".join(typed.split()).casefold()
    if len(wanted) < MIN_NAME:
        raise InvalidArgument(f"name: at least {MIN_NAME} letters")
    found: dict[str, str] = {}
    batch: list[str] = []
    for scanned, key in enumerate(account_keys(client), start=1):
        batch.append(key)
        if len(batch) == SCAN_BATCH or scanned >= scan_limit:
            found |= _named(client, batch, wanted)
            batch = []
        if scanned >= scan_limit or len(found) >= MAX_FOUND:
            note = f"Looked through {scanned} accounts and stopped: give more of the name, or the number."
            return _listed(found, note)
    found |= _named(client, batch, wanted)  # the last, short batch
    return _listed(found, "" if found else "No subscriber has this name.")


def _listed(found: dict[str, str], note: str) -> Found:
    account_ids = sorted(found)[:MAX_FOUND]
    return Found(account_ids, note, {account_id: found[account_id] for account_id in account_ids})


def _named(client: AnySyncRedis, keys: list[str], wanted: str) -> dict[str, str]:
    """The accounts among `keys` whose contact name holds `wanted` (casefolded, spaces squeezed), with
    their names."""
    if not keys:
        return {}
    names = [account.get("contact_name", "") for account in read_accounts(client, keys)]
    return {
        account_of_key(key): name
        for key, name in zip(keys, names, strict=True)
        if wanted in " ".join(name.split()).casefold()
    }


def find(client: AnySyncRedis, way: str, typed: str, region: str) -> Found:
    """The accounts `typed` names, read the `way` given; InvalidArgument naming the field when it
    cannot be one."""
    if way == "number":
        return Found([account_id_of(typed, region)])
    if way == "voucher":
        return by_voucher(client, typed)
    if way == "payment":
        return by_payment_reference(client, typed)
    if way == "name":
        return by_name(client, typed)
    raise InvalidArgument(f"by: one of {', '.join(WAYS)}")
