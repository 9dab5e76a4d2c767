"""ISO 20022 bank-to-customer statements and notifications read with lxml: camt.053 (Document /
BkToCstmrStmt / Stmt / Ntry) and camt.054 (Document / BkToCstmrDbtCdtNtfctn / Ntfctn / Ntry), any
version of either (the namespace says which). Each booked credit entry (CdtDbtInd CRDT, status
BOOK) becomes a Credit: its account servicer reference (AcctSvcrRef: the bank's own, unique id of
the entry, the idempotency of an import), amount and currency, booking date, and the remittance
texts (RmtInf/Ustrd, RmtInf/Strd/CdtrRefInf/Ref, AddtlNtryInf) in which the payer names the
account. An entry that batches transactions with amounts of their own (several TxDtls) gives one
Credit per transaction, each with its own AcctSvcrRef (else the entry's, numbered).

Parsing is strict and whole: a document that is not a camt.053/054, or an entry without an amount,
a currency or a reference, is an error naming the entry and its line, and nothing of the file is
applied. XML entities and network access are off."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import msgspec
from babel.numbers import get_currency_precision
from lxml import etree

CAMT = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(053|054)\.\d{3}\.\d{2}$")
CONTAINERS = {"053": ("BkToCstmrStmt", "Stmt"), "054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}
AMOUNT = re.compile(r"^\d{1,15}(\.\d{1,5})?$")


class StatementError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Credit(msgspec.Struct, frozen=True, kw_only=True):
    servicer_reference: str
    amount_minor: int
    currency: str
    booking_date: str
    remittance: list[str]
    line: int


class Statement(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # camt.053 or camt.054
    credits: list[Credit]
    skipped: int  # debits and entries not booked


def parse_statement(data: bytes, max_entries: int) -> Statement:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise StatementError(f"not XML: {error}") from None
    namespace = etree.QName(root).namespace or ""
    match = CAMT.match(namespace)
    if etree.QName(root).localname != "Document" or match is None:
        raise StatementError("not an ISO 20022 camt.053 or camt.054 Document")
    kind = match.group(1)
    ns = {"c": namespace}
    group, container = CONTAINERS[kind]
    entries = root.findall(f"c:{group}/c:{container}/c:Ntry", ns)
    if root.find(f"c:{group}", ns) is None:
        raise StatementError(f"{group}: missing (a camt.{kind} has one)")
    if len(entries) > max_entries:
        raise StatementError(f"more than {max_entries} entries")
    credits, skipped = [], 0
    for number, entry in enumerate(entries, start=1):
        found = _credits_of(entry, ns, f"entry {number} (line {_line(entry)})")
        skipped += not found
        credits += found
    return Statement(kind=f"camt.{kind}", credits=credits, skipped=skipped)


def _line(element: etree._Element) -> int:
    line: object = element.sourceline  # the stubs type it wrongly
    return line if isinstance(line, int) else 0


def _text(element: etree._Element, path: str, ns: dict[str, str]) -> str:
    found = element.find(path, ns)
    return (found.text or "").strip() if found is not None else ""


def _amount_minor(element: etree._Element | None, where: str) -> tuple[int, str]:
    if element is None:
        raise StatementError(f"{where}: Amt: missing")
    currency = element.get("Ccy", "")
    if not re.match(r"^[A-Z]{3}$", currency):
        raise StatementError(f"{where}: Amt/@Ccy: an ISO 4217 code")
    text = (element.text or "").strip()
    try:
        value = Decimal(text) if AMOUNT.match(text) else None
    except InvalidOperation:
        value = None
    if value is None or value <= 0:
        raise StatementError(f"{where}: Amt: a positive decimal amount")
    minor = value * 10 ** get_currency_precision(currency)
    if minor != minor.to_integral_value():
        raise StatementError(f"{where}: Amt: more decimals than {currency} has")
    return int(minor), currency


def _remittance(element: etree._Element, ns: dict[str, str]) -> list[str]:
    texts = [node.text or "" for node in element.iterfind(".//c:RmtInf/c:Ustrd", ns)]
    texts += [node.text or "" for node in element.iterfind(".//c:RmtInf/c:Strd/c:CdtrRefInf/c:Ref", ns)]
    return [text.strip() for text in texts if text.strip()]


def _booked(entry: etree._Element, ns: dict[str, str]) -> bool:
    status = _text(entry, "c:Sts/c:Cd", ns) or _text(entry, "c:Sts", ns)
    return status in ("BOOK", "")


def _credits_of(entry: etree._Element, ns: dict[str, str], where: str) -> list[Credit]:
    indicator = _text(entry, "c:CdtDbtInd", ns)
    if indicator not in ("CRDT", "DBIT"):
        raise StatementError(f"{where}: CdtDbtInd: CRDT or DBIT")
    amount_minor, currency = _amount_minor(entry.find("c:Amt", ns), where)
    if indicator == "DBIT" or not _booked(entry, ns):
        return []
    reference = _text(entry, "c:AcctSvcrRef", ns)
    booking = _text(entry, "c:BookgDt/c:Dt", ns) or _text(entry, "c:BookgDt/c:DtTm", ns)[:10]
    extra = [text for text in [_text(entry, "c:AddtlNtryInf", ns)] if text]
    transactions = entry.findall("c:NtryDtls/c:TxDtls", ns)
    if len(transactions) > 1 and all(_transaction_amount(tx, ns) is not None for tx in transactions):
        credits = []
        for index, transaction in enumerate(transactions, start=1):
            at = f"{where} TxDtls {index}"
            own = _text(transaction, "c:Refs/c:AcctSvcrRef", ns) or (reference and f"{reference}/{index}")
            if not own:
                raise StatementError(f"{at}: AcctSvcrRef: missing (the idempotency of the import)")
            tx_minor, tx_currency = _amount_minor(_transaction_amount(transaction, ns), at)
            credit = Credit(
                servicer_reference=own,
                amount_minor=tx_minor,
                currency=tx_currency,
                booking_date=booking,
                remittance=_remittance(transaction, ns),
                line=_line(transaction),
            )
            credits.append(credit)
        return credits
    if not reference:
        raise StatementError(f"{where}: AcctSvcrRef: missing (the idempotency of the import)")
    credit = Credit(
        servicer_reference=reference,
        amount_minor=amount_minor,
        currency=currency,
        booking_date=booking,
        remittance=_remittance(entry, ns) + extra,
        line=_line(entry),
    )
    return [credit]


def _transaction_amount(transaction: etree._Element, ns: dict[str, str]) -> etree._Element | None:
    # an lxml element without children is false: compare with None
    found = transaction.find("c:Amt", ns)
    return found if found is not None else transaction.find("c:AmtDtls/c:TxAmt/c:Amt", ns)
