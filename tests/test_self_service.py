"""The SelfService RPCs against a real server, with the notifier delivering the sign-in codes by SMS
to a real HTTP endpoint in Kannel's sendsms form (the code is read from the text that arrives there):
a wrong code costs a try, the right one opens a session that reaches its own account only; a token
made up for another account, a token after sign-out (a replayed cookie) and garbage are
UNAUTHENTICATED; five wrong tries kill a code, a fourth code within the window is not sent (and
answered as a sent one, as is an unknown number); a voucher
redeemed twice (also by two accounts at once) pays once and resumes a one-way-suspended account; a
mistyped voucher code is caught by its check digit; a bundle bought twice with one key is bought
once; preferences and the usage summary come back for the signed-in account only; emergency credit
is offered by tier and by what the subscriber already owes, and borrowed once per key; an account id
holding dots signs in too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from creditd.config.settings import Settings
from creditd.core.vouchers import luhn_digit, printed
from creditd.notifier.service import Notifier
from creditd.store.keys import notifier_key, partition_of
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import EVENT, SMS, Harness, ServerAt, charge_request
from tests.portal import create_voucher, last_code, sms_notifier, texts_to
from tests.test_channels import http_server
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT, OTHER = "66818180001", "66818180002"


@pytest.fixture
def gateway() -> Iterator[object]:
    with http_server() as server:
        yield server


async def code_for(creditd: Harness, notifier: Notifier, gateway: object, account_id: str) -> str:
    stub = pb_grpc.SelfServiceStub(creditd.channel)
    await stub.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=account_id))
    await notifier.pass_once()
    return last_code(gateway, account_id)


async def signed_in(creditd: Harness, notifier: Notifier, gateway: object, account_id: str) -> str:
    code = await code_for(creditd, notifier, gateway, account_id)
    answer = await pb_grpc.SelfServiceStub(creditd.channel).SignIn(pb.SignInRequest(account_id=account_id, code=code))
    assert answer.session_token.startswith(account_id + ".")
    return answer.session_token


async def status_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_code_by_sms_opens_a_session_for_that_account_only(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T23:30:00")) as creditd:  # quiet hours do not hold a code
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=5_000)
        await creditd.create_account(OTHER, balance=7_000)
        ss = pb_grpc.SelfServiceStub(creditd.channel)
        code = await code_for(creditd, notifier, gateway, ACCOUNT)
        # the delivery record holds the code: it goes soon after the code stops working
        pattern = notifier_key("delivery", partition_of(ACCOUNT, 256), idempotency_key="signin.*")
        records = list(creditd.redis.scan_iter(pattern))
        assert records and all(0 < creditd.redis.ttl(key) <= 600 for key in records)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        miss = await ss.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=wrong))
        assert (miss.session_token, miss.tries_left) == ("", 4)
        token = (await ss.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=code))).session_token
        mine = await ss.GetMyAccount(pb.SessionRequest(session_token=token))
        assert (mine.account_id, mine.balance) == (ACCOUNT, 5_000)
        # the code is used up
        again = await ss.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=code))
        assert again.session_token == ""
        forged = OTHER + token[len(ACCOUNT) :]
        for bad in (forged, "garbage", "", f"{ACCOUNT}.not-the-token"):
            code_seen = await status_of(ss.GetMyAccount(pb.SessionRequest(session_token=bad)))
            assert code_seen == grpc.StatusCode.UNAUTHENTICATED, bad
        await ss.SignOut(pb.SessionRequest(session_token=token))
        replayed = await status_of(ss.GetMyAccount(pb.SessionRequest(session_token=token)))
        assert replayed == grpc.StatusCode.UNAUTHENTICATED
        ledger = await creditd.ledger(ACCOUNT)
        assert all(entry.kind == "opening" for entry in ledger)  # signing in moved no money


async def test_five_wrong_tries_kill_the_code_and_codes_are_rationed(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=5_000)
        ss = pb_grpc.SelfServiceStub(creditd.channel)
        code = await code_for(creditd, notifier, gateway, ACCOUNT)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        left = [(await ss.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=wrong))).tries_left for _ in range(5)]
        assert left == [4, 3, 2, 1, 0]
        assert (await ss.SignIn(pb.SignInRequest(account_id=ACCOUNT, code=code))).session_token == ""
        await code_for(creditd, notifier, gateway, ACCOUNT)
        await code_for(creditd, notifier, gateway, ACCOUNT)
        # a fourth: answered as the others (telling would tell who is ours), but not sent
        fourth = await ss.RequestSignInCode(pb.RequestSignInCodeRequest(account_id=ACCOUNT))
        assert fourth.expires_at_ms == creditd.clock.now_ms() + 300_000
        await notifier.pass_once()
        assert len(texts_to(gateway, ACCOUNT)) == 3
        creditd.clock.advance(15 * 60)
        await code_for(creditd, notifier, gateway, ACCOUNT)  # a new window
        unknown = await ss.RequestSignInCode(pb.RequestSignInCodeRequest(account_id="66800000000"))
        assert unknown.expires_at_ms == creditd.clock.now_ms() + 300_000
        assert texts_to(gateway, "66800000000") == []
        bad = pb.RequestSignInCodeRequest(account_id="a b")
        assert await status_of(ss.RequestSignInCode(bad)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_voucher_pays_once_and_resumes_a_suspended_line(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=100)
        await creditd.create_account(OTHER, balance=100)
        for n in range(2):  # 2 SMS at 50: balance 0, one-way suspended
            await creditd.credit_control.Charge(charge_request(f"sms{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)]))
        assert (await creditd.get(ACCOUNT)).status == pb.ONE_WAY_SUSPENDED
        token = await signed_in(creditd, notifier, gateway, ACCOUNT)
        other = await signed_in(creditd, notifier, gateway, OTHER)
        ss = pb_grpc.SelfServiceStub(creditd.channel)
        code = create_voucher(creditd, 15_000)
        mistyped = code[:-1] + str((int(code[-1]) + 1) % 10)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=token, code=mistyped))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "check digit" in (error.value.details() or "")
        paid = await ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=token, code=printed(code)))
        assert (paid.account.balance, paid.account.status, paid.replayed) == (15_000, pb.ACTIVE, False)
        again = await ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=token, code=code))
        assert (again.account.balance, again.replayed) == (15_000, True)
        with pytest.raises(grpc.aio.AioRpcError) as used:
            await ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=other, code=code))
        assert used.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert used.value.details() == "code: this voucher has been used"
        # two subscribers typing one new voucher at the same instant: one is paid
        shared = create_voucher(creditd, 2_000)
        outcomes = await asyncio.gather(
            *(
                status_of(ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=t, code=shared)))
                for t in (token, other, token, other)
            )
        )
        assert sorted(o.name for o in outcomes).count("OK") == 2  # the winner's redemption and its replay
        balances = [(await creditd.get(a)).balance for a in (ACCOUNT, OTHER)]
        assert sum(balances) == 15_000 + 100 + 2_000
        unknown_code = "1234567812345678"[:-1] + luhn_digit("1234567812345678"[:-1])
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=token, code=unknown_code))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # past the top-up key's retention its record is gone: redeeming again must not pay again
        creditd.clock.advance(settings.limits.topup_key_retention_s + 60)
        later = await signed_in(creditd, notifier, gateway, ACCOUNT)
        balance = (await creditd.get(ACCOUNT)).balance
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await ss.RedeemVoucher(pb.RedeemVoucherRequest(session_token=later, code=code))
        assert (stale.value.code(), stale.value.details()) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "code: this voucher has been used",
        )
        assert (await creditd.get(ACCOUNT)).balance == balance


async def test_bundles_preferences_and_usage_of_the_signed_in_account(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=50_000)
        await creditd.credit_control.Charge(charge_request("sms1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)]))
        token = await signed_in(creditd, notifier, gateway, ACCOUNT)  # its pass also folds the usage
        ss = pb_grpc.SelfServiceStub(creditd.channel)
        catalogue = await ss.ListMyBundles(pb.SessionRequest(session_token=token))
        assert catalogue.currency == "THB" and "data_1gb" in [b.bundle_id for b in catalogue.bundles]
        buy = pb.PurchaseMyBundleRequest(session_token=token, bundle_id="sms_50", idempotency_key="click-1")
        first, second = await asyncio.gather(ss.PurchaseMyBundle(buy), ss.PurchaseMyBundle(buy))
        assert first.balance == second.balance == 50_000 - 50 - 1_900
        preferences = pb.Preferences(language="ru", channels=["sms"], marketing_opt_in=True)
        card = await ss.SetMyPreferences(pb.SetMyPreferencesRequest(session_token=token, preferences=preferences))
        assert (card.account_id, card.preferences.language) == (ACCOUNT, "ru")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await ss.SetMyPreferences(
                pb.SetMyPreferencesRequest(session_token=token, preferences=pb.Preferences(language="de"))
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "preferences.language" in (
            bad.value.details() or ""
        )
        usage = await ss.GetMyUsage(pb.SessionRequest(session_token=token))
        assert [(r.rating_group, r.charged) for r in usage.recent] == [(SMS, 50)]
        ledger = await ss.ListMyLedger(pb.ListMyLedgerRequest(session_token=token, limit=10))
        assert [e.kind for e in ledger.entries] == ["purchase", "charge", "opening"]
        assert ledger.entries[0].actor == f"local/{ACCOUNT}"  # the portal's identity and the subscriber


async def test_emergency_credit_offered_and_borrowed_by_the_subscriber(
    server_at: ServerAt, settings: Settings, gateway: object
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(ACCOUNT, balance=300)
        token = await signed_in(creditd, notifier, gateway, ACCOUNT)
        ss = pb_grpc.SelfServiceStub(creditd.channel)
        offers = await ss.ListMyLoanOffers(pb.SessionRequest(session_token=token))
        # emergency_50 is for silver and gold; a new account is basic
        assert [(o.offer_id, o.amount, o.fee) for o in offers.offers] == [("emergency_10", 1000, 100)]
        assert (offers.currency, offers.loan_outstanding) == ("THB", 0)
        borrow = pb.BorrowMyCreditRequest(session_token=token, offer_id="emergency_10", idempotency_key="click-1")
        first, second = await asyncio.gather(ss.BorrowMyCredit(borrow), ss.BorrowMyCredit(borrow))
        assert sorted([first.replayed, second.replayed]) == [False, True]
        assert first.account.balance == second.account.balance == 1300
        assert first.account.loan_outstanding == 1100
        offers = await ss.ListMyLoanOffers(pb.SessionRequest(session_token=token))
        assert (list(offers.offers), offers.loan_outstanding) == ([], 1100)  # one at a time
        again = pb.BorrowMyCreditRequest(session_token=token, offer_id="emergency_10", idempotency_key="click-2")
        assert await status_of(ss.BorrowMyCredit(again)) == grpc.StatusCode.FAILED_PRECONDITION
        unknown = pb.BorrowMyCreditRequest(session_token=token, offer_id="no such", idempotency_key="click-3")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await ss.BorrowMyCredit(unknown)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "offer_id" in (bad.value.details() or "")
        ledger = await ss.ListMyLedger(pb.ListMyLedgerRequest(session_token=token, limit=1))
        assert (ledger.entries[0].kind, ledger.entries[0].actor) == ("loan", f"local/{ACCOUNT}")
        assert (await creditd.get(ACCOUNT)).balance == 1300
        creditd.assert_audit_clean()


async def test_an_account_id_with_dots_signs_in(server_at: ServerAt, settings: Settings, gateway: object) -> None:
    """Account ids may hold dots; the token's random part never does, so the id is what precedes the
    last dot."""
    dotted = "corp.line.0001"
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        notifier = sms_notifier(creditd, gateway, settings)
        await creditd.create_account(dotted, balance=700)
        token = await signed_in(creditd, notifier, gateway, dotted)
        card = await pb_grpc.SelfServiceStub(creditd.channel).GetMyAccount(pb.SessionRequest(session_token=token))
        assert (card.account_id, card.balance) == (dotted, 700)
