"""`creditd account ...`: a small client of the Accounts service of a running server."""

from __future__ import annotations

import uuid

import click

from creditd.cli import render
from creditd.cli.common import call, server_option, stubs
from creditd.v1 import creditd_pb2 as pb


@click.group()
def account() -> None:
    """Create, show, top up, suspend and set the credit of accounts on a running server."""


@account.command("create")
@click.argument("account_id")
@click.option("--plan", default="standard", show_default=True)
@click.option("--balance", "initial_balance", default=0, show_default=True, help="initial balance, minor units")
@click.option("--credit-limit", type=int, help="minor units, an operator override; default: the lowest tier's")
@click.option("--billing-cycle-day", type=click.IntRange(1, 28), help="default: today's day of the month")
@click.option("--name", default="")
@click.option("--email", default="")
@click.option("--phone", default="")
@click.option("--dealer", default="", help="who signed the customer (shop, agent, online)")
@server_option
def account_create(
    account_id: str,
    plan: str,
    initial_balance: int,
    credit_limit: int | None,
    billing_cycle_day: int | None,
    name: str,
    email: str,
    phone: str,
    dealer: str,
    server: str,
) -> None:
    accounts, _ = stubs(server)
    contact = pb.Contact(name=name, email=email, phone=phone)
    request = pb.CreateAccountRequest(account_id=account_id, plan=plan, initial_balance=initial_balance, dealer=dealer)
    request.contact.CopyFrom(contact)
    if credit_limit is not None:
        request.credit_limit = credit_limit
    if billing_cycle_day is not None:
        request.billing_cycle_day = billing_cycle_day
    click.echo(render.account_card(call(accounts.CreateAccount, request)))


@account.command("show")
@click.argument("account_id")
@click.option("--entries", default=10, show_default=True, help="ledger entries to list")
@server_option
def account_show(account_id: str, entries: int, server: str) -> None:
    accounts, _ = stubs(server)
    card = call(accounts.GetAccount, pb.GetAccountRequest(account_id=account_id))
    ledger = call(accounts.ListLedger, pb.ListLedgerRequest(account_id=account_id, limit=entries))
    click.echo(render.account_card(card))
    click.echo(render.ledger_table(ledger.entries))


@account.command("topup")
@click.argument("account_id")
@click.argument("amount", type=int)
@click.option("--channel", default="cli", show_default=True)
@click.option("--key", "idempotency_key", help="idempotency key [default: a new random one]")
@server_option
def account_topup(account_id: str, amount: int, channel: str, idempotency_key: str | None, server: str) -> None:
    accounts, _ = stubs(server)
    key = idempotency_key or uuid.uuid4().hex
    answer = call(
        accounts.TopUp, pb.TopUpRequest(account_id=account_id, amount=amount, channel=channel, idempotency_key=key)
    )
    outcome = "REPLAYED (nothing applied)" if answer.replayed else "applied"
    click.echo(f"top-up {key}: {outcome}, ledger seq {answer.ledger_seq}")
    click.echo(render.account_card(answer.account))


@account.command("status")
@click.argument("account_id")
@click.argument("status", type=click.Choice(["ACTIVE", "ONE_WAY_SUSPENDED", "TWO_WAY_SUSPENDED", "TERMINATED"]))
@click.option("--reason", default="ADMIN", show_default=True, type=click.Choice(["ADMIN", "FRAUD"]))
@server_option
def account_status(account_id: str, status: str, reason: str, server: str) -> None:
    accounts, _ = stubs(server)
    request = pb.SetStatusRequest(account_id=account_id, status=pb.AccountStatus.Value(status), reason=reason)
    click.echo(render.account_card(call(accounts.SetStatus, request)))


@account.command("credit-limit")
@click.argument("account_id")
@click.argument("amount", type=int, required=False)
@click.option("--tier", "back_to_tier", is_flag=True, help="clear the override: the tier's limit again")
@server_option
def account_credit_limit(account_id: str, amount: int | None, back_to_tier: bool, server: str) -> None:
    """Set an operator's credit limit (minor units), or with --tier go back to the tier's."""
    if (amount is None) == (not back_to_tier):
        raise click.UsageError("give AMOUNT or --tier, not both or neither")
    accounts, _ = stubs(server)
    request = pb.SetCreditLimitRequest(account_id=account_id)
    if amount is not None:
        request.credit_limit = amount
    click.echo(render.account_card(call(accounts.SetCreditLimit, request)))


@account.command("buy")
@click.argument("account_id")
@click.argument("bundle_id")
@click.option("--key", "idempotency_key", help="idempotency key [default: a new random one]")
@server_option
def account_buy(account_id: str, bundle_id: str, idempotency_key: str | None, server: str) -> None:
    """Buy a bundle of the account's plan with its money."""
    accounts, _ = stubs(server)
    key = idempotency_key or uuid.uuid4().hex
    request = pb.PurchaseBundleRequest(account_id=account_id, bundle_id=bundle_id, idempotency_key=key)
    click.echo(render.account_card(call(accounts.PurchaseBundle, request)))
