"""`creditd account ...`: a small client of the Accounts service of a running server. Amounts are whole
minor units of the account's currency (satang for THB: 100 = 1 baht)."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from creditd.cli import edge, render
from creditd.cli.common import call, server_option, stubs
from creditd.config.limits import Limits
from creditd.config.settings import load_settings
from creditd.resources import default_config_path
from creditd.v1 import creditd_pb2 as pb

MAX_AMOUNT_MINOR = Limits().max_amount_minor
MINOR = "minor units (satang for THB: 100 = 1 baht)"
account_id_argument = click.argument("account_id", callback=edge.identifier("account_id"))
key_option = click.option(
    "--key",
    "idempotency_key",
    callback=edge.identifier("idempotency_key"),
    help="idempotency key: the same key again applies nothing [default: a new random one]",
)


@click.group(cls=edge.Group)
def account() -> None:
    """Create, show, top up, adjust, suspend, move to another plan and set the credit of accounts on a
    running server.
    Amounts are in minor units (satang for THB: 100 = 1 baht)."""


@account.command("create")
@click.argument("account_id", callback=edge.subscriber_number)
@click.option("--plan", default="standard", show_default=True, callback=edge.identifier("plan"), help="plan name")
@click.option(
    "--balance",
    "initial_balance",
    default=0,
    show_default=True,
    type=click.IntRange(0, MAX_AMOUNT_MINOR),
    help=f"opening balance, {MINOR}",
)
@click.option(
    "--credit-limit",
    type=click.IntRange(0, MAX_AMOUNT_MINOR),
    help=f"an operator's credit limit, {MINOR} [default: the lowest tier's]",
)
@click.option("--billing-cycle-day", type=click.IntRange(1, 28), help="day of the month [default: today's]")
@click.option("--name", default="", help="the subscriber's name")
@click.option("--email", default="", help="the subscriber's e-mail address")
@click.option("--phone", default="", help="a contact number")
@click.option(
    "--dealer",
    default="",
    callback=edge.identifier("dealer", optional=True),
    help="who signed the customer (shop, agent, online)",
)
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
    """Open ACCOUNT_ID (the subscriber's number, E.164 digits without +) and print its card."""
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
@account_id_argument
@click.option("--entries", default=10, show_default=True, type=click.IntRange(0, 1000), help="ledger entries to list")
@server_option
def account_show(account_id: str, entries: int, server: str) -> None:
    """Print the account's card and its newest ledger entries (amounts in minor units)."""
    accounts, _ = stubs(server)
    card = call(accounts.GetAccount, pb.GetAccountRequest(account_id=account_id))
    ledger = call(accounts.ListLedger, pb.ListLedgerRequest(account_id=account_id, limit=entries))
    click.echo(render.account_card(card))
    click.echo(render.ledger_table(ledger.entries))


@account.command("topup")
@account_id_argument
@click.argument("amount", type=int)
@click.option(
    "--channel",
    default="cli",
    show_default=True,
    callback=edge.top_up_channel,
    help="where the money came from: one of the config's metrics.channels",
)
@key_option
@server_option
def account_topup(account_id: str, amount: int, channel: str, idempotency_key: str | None, server: str) -> None:
    """Credit AMOUNT (minor units, satang for THB; positive) paid through a channel. To take money off,
    or correct a mistake, use `creditd account adjust`."""
    if amount <= 0:
        raise click.BadParameter(
            f"a top-up is money paid in: 1 to {MAX_AMOUNT_MINOR} minor units, not {amount}; to take money off "
            f"or correct a balance use `creditd account adjust {account_id} {amount} --reason WHY`",
            param_hint="'AMOUNT'",
        )
    accounts, _ = stubs(server)
    key = idempotency_key or uuid.uuid4().hex
    answer = call(
        accounts.TopUp, pb.TopUpRequest(account_id=account_id, amount=amount, channel=channel, idempotency_key=key)
    )
    outcome = "REPLAYED (nothing applied)" if answer.replayed else "applied"
    click.echo(f"top-up {key}: {outcome}, ledger seq {answer.ledger_seq}")
    click.echo(render.account_card(answer.account))


@account.command("status")
@account_id_argument
@click.argument("status", type=click.Choice(["ACTIVE", "ONE_WAY_SUSPENDED", "TWO_WAY_SUSPENDED", "TERMINATED"]))
@click.option(
    "--reason", default="ADMIN", show_default=True, type=click.Choice(["ADMIN", "FRAUD"]), help="why, kept with it"
)
@server_option
def account_status(account_id: str, status: str, reason: str, server: str) -> None:
    """Suspend (one way: no outgoing; two ways: nothing), resume (ACTIVE) or terminate an account."""
    accounts, _ = stubs(server)
    request = pb.SetStatusRequest(account_id=account_id, status=pb.AccountStatus.Value(status), reason=reason)
    click.echo(render.account_card(call(accounts.SetStatus, request)))


@account.command("credit-limit")
@account_id_argument
@click.argument("amount", type=click.IntRange(0, MAX_AMOUNT_MINOR), required=False)
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


@account.command("plan")
@account_id_argument
@click.argument("plan", callback=edge.identifier("plan"))
@server_option
def account_plan(account_id: str, plan: str, server: str) -> None:
    """Move an account to another configured plan of its currency, at once (its ledger records the
    change; the console asks a reason)."""
    accounts, _ = stubs(server)
    click.echo(render.account_card(call(accounts.SetPlan, pb.SetPlanRequest(account_id=account_id, plan=plan))))


@account.command("buy")
@account_id_argument
@click.argument("bundle_id", callback=edge.identifier("bundle_id"))
@key_option
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="the server's config, to list the plan's bundles when one is unknown [default: the shipped one]",
)
@server_option
def account_buy(account_id: str, bundle_id: str, idempotency_key: str | None, config: Path | None, server: str) -> None:
    """Buy BUNDLE_ID of the account's plan with its money (the bundle's price, in minor units)."""
    accounts, _ = stubs(server)
    key = idempotency_key or uuid.uuid4().hex
    request = pb.PurchaseBundleRequest(account_id=account_id, bundle_id=bundle_id, idempotency_key=key)
    try:
        card = call(accounts.PurchaseBundle, request)
    except click.ClickException as error:
        raise click.ClickException(error.message + _offered_bundles(error.message, config)) from None
    click.echo(render.account_card(card))


def _offered_bundles(message: str, config: Path | None) -> str:
    """The bundles the plan named in a 'not offered by plan P' refusal offers, by the config."""
    _, marker, plan_name = message.partition("bundle_id: not offered by plan ")
    if not marker:
        return ""
    plan = load_settings(config or default_config_path()).plans.get(plan_name.strip())
    if plan is None:
        return ""
    offered = ", ".join(f"{bundle.bundle_id} ({bundle.price_minor})" for bundle in plan.bundles) or "none"
    return f"; it offers: {offered}"


@account.command("adjust")
@account_id_argument
@click.argument("amount", type=click.IntRange(-MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR))
@click.option(
    "--reason",
    required=True,
    callback=edge.free_text("reason", Limits().max_contact_field_length),
    help="why: kept in the ledger entry (printable, at most 128 bytes)",
)
@key_option
@server_option
def account_adjust(account_id: str, amount: int, reason: str, idempotency_key: str | None, server: str) -> None:
    """Correct the balance by AMOUNT minor units (satang for THB): positive credits, negative debits
    (e.g. `adjust 66812345678 -100 --reason "double top-up"`). Written to the ledger as an adjustment."""
    if amount == 0:
        raise click.BadParameter("an adjustment moves money: not 0", param_hint="'AMOUNT'")
    accounts, _ = stubs(server)
    key = idempotency_key or uuid.uuid4().hex
    request = pb.AdjustRequest(account_id=account_id, amount=amount, reason=reason, idempotency_key=key)
    answer = call(accounts.Adjust, request)
    outcome = "REPLAYED (nothing applied)" if answer.replayed else "applied"
    click.echo(f"adjustment {key}: {outcome}, ledger seq {answer.ledger_seq}, balance {answer.balance}")
    click.echo(render.account_card(call(accounts.GetAccount, pb.GetAccountRequest(account_id=account_id))))
