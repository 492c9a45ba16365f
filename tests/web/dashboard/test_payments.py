"""The payments list (filters, search, keyset pages, CSV), the detail page and its timeline, cancel, links."""

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import update

from app.dashboard import queries
from app.extensions import db
from app.models import Payment, PaymentAttempt, utcnow
from app.state_machine import Status, transition
from tests.helpers import reload
from tests.payflow import pay
from tests.web.dashboard.conftest import token_of


def _set(payment, status=None, days_ago=None, gateway=None):
    """Test setup: move a payment through the state machine, and/or back-date it."""
    if status == Status.SUCCEEDED:  # paid through an attempt, as a gateway's confirmation would
        from app.gateways.base import CallbackResult, Outcome
        from app.services.callbacks import apply_result
        from app.state_machine import open_attempt

        attempt = open_attempt(payment, gateway or "testcard")
        apply_result(payment, attempt, CallbackResult(Outcome.SUCCEEDED, amount=payment.amount,
                                                      currency=payment.currency), source="test")
    elif status:
        if status != Status.PENDING and Status(payment.status) == Status.PENDING and status != Status.PROCESSING:
            transition(payment, Status.PROCESSING, reason="test", source="test")
        transition(payment, status, reason="test", source="test", changes={"gateway": gateway or "testcard"})
    if days_ago is not None:
        db.session.execute(update(Payment).where(Payment.id == payment.id)
                           .values(created_at=utcnow() - timedelta(days=days_ago)))
    db.session.commit()
    return reload(payment)


def _refs(html):
    return re.findall(r'<td data-label="Reference">([^<]+)<br>', html)


def test_filters_combine_and_search_each_field(signed_in, merchant, factories):
    a = _set(factories.payment(merchant, reference="A", currency="USD", amount=1000), Status.SUCCEEDED)
    b = _set(factories.payment(merchant, reference="B", currency="USD", amount=2000), Status.FAILED, days_ago=3)
    c = _set(factories.payment(merchant, reference="C", currency="VND", amount=50_000), Status.SUCCEEDED, days_ago=10)
    factories.payment(merchant, reference="D", currency="USD", amount=3000, customer={"email": "Ana@Shop.Example"})
    get = lambda **q: _refs(signed_in.get("/dashboard/payments", query_string=q).text)  # noqa: E731
    assert get() == ["D", "A", "B", "C"]  # newest first
    assert get(status="succeeded") == ["A", "C"]
    assert get(status=["succeeded", "failed"], currency="USD") == ["A", "B"]
    assert get(currency="VND") == ["C"]
    assert get(gateway="testcard", status="succeeded", currency="USD") == ["A"]
    day = lambda n: (utcnow() - timedelta(days=n)).date().isoformat()  # noqa: E731
    assert get(**{"from": day(5), "to": day(1)}) == ["B"]
    assert get(**{"from": day(5)}) == ["D", "A", "B"]
    assert get(**{"to": day(5)}) == ["C"]
    assert get(q="C") == ["C"]
    assert get(q=b.public_id) == ["B"]
    assert get(q="ana@shop.example") == ["D"]
    assert get(q="ANA@shop.example", status="pending") == ["D"]
    db.session.execute(update(PaymentAttempt).where(PaymentAttempt.payment_id == a.id).values(
        reference="cs_test_x1", transaction_id="txn_77"))
    db.session.commit()
    assert get(q="cs_test_x1") == ["A"] and get(q="txn_77") == ["A"]
    assert get(q=a.attempts[0].public_id) == ["A"]  # our id for the attempt, as the gateway shows it
    assert get(q="nothing-like-this") == []
    page = signed_in.get("/dashboard/payments", query_string={"status": "nope", "from": "yesterday"})
    assert "Ignored filter: unknown status" in page.text and "is not a date" in page.text
    assert reload(c).status == "succeeded"


def test_keyset_pages_keep_the_filters(signed_in, merchant, factories, monkeypatch):
    monkeypatch.setattr(queries, "PAGE_SIZE", 2)
    monkeypatch.setattr("app.dashboard.payments.PAGE_SIZE", 2)
    for i in range(5):
        factories.payment(merchant, reference=f"U{i}", currency="USD", amount=100 + i)
    factories.payment(merchant, reference="V0", currency="VND")
    # Same created_at for all: the id breaks the tie, so no row is skipped or repeated.
    db.session.execute(update(Payment).values(created_at=utcnow().replace(microsecond=0)))
    db.session.commit()
    seen, url = [], "/dashboard/payments?currency=USD"
    while url:
        html = signed_in.get(url).text
        seen += _refs(html)
        match = re.search(r'href="([^"]+)" rel="next"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
        if url:
            assert "currency=USD" in url and "after=" in url
    assert seen == ["U4", "U3", "U2", "U1", "U0"]
    # A malformed cursor is the first page, not an error.
    assert _refs(signed_in.get("/dashboard/payments?currency=USD&after=garbage").text) == ["U4", "U3"]


def test_csv_export_streams_the_filtered_set(signed_in, merchant, factories):
    for i in range(3):
        factories.payment(merchant, reference=f"=HYPERLINK({i})", currency="USD", amount=1234 + i,
                          customer={"email": f"c{i}@shop.example"})
    factories.payment(merchant, reference="VND-ONE", currency="VND")
    r = signed_in.get("/dashboard/payments.csv?currency=USD")
    assert r.is_streamed
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["amount"] for row in rows] == ["12.36", "12.35", "12.34"]
    assert rows[0]["reference"] == "'=HYPERLINK(2)"  # no formula injection into spreadsheets
    assert rows[0]["customer_email"] == "c2@shop.example"
    assert {row["currency"] for row in rows} == {"USD"}


def test_detail_timeline_after_a_real_payment(signed_in, merchant, factories, http, run_jobs):
    payment = factories.payment(merchant, reference="ORDER-42", currency="USD", amount=2500,
                                customer={"email": "sari@shop.example", "name": "Sari"},
                                items=[{"name": "Coffee", "quantity": 2, "unit_amount": 1250}])
    pay(http, payment)
    run_jobs(advance=5)  # the acquirer's signed webhook, too
    html = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    assert "$25.00" in html and "ORDER-42" in html and "sari@shop.example" in html and "Coffee" in html
    assert "Visa •••• 4242" in html
    assert "badge-succeeded" in html and "succeeded</span>" in html
    assert "Raw payload" in html and "verified</span>" in html
    assert html.count('class="tl tl-status_change"') >= 2  # pending → processing → succeeded
    assert "Refund…" in html and "Cancel payment" not in html
    assert "Ask Card (test acquirer) for the status now" in html


def test_cancel_a_pending_payment(signed_in, merchant, factories):
    payment = factories.payment(merchant)
    token = token_of(signed_in, f"/dashboard/payments/{payment.public_id}")
    r = signed_in.post(f"/dashboard/payments/{payment.public_id}/cancel", data={"csrf_token": token},
                       follow_redirects=True)
    assert "Payment cancelled." in r.text
    assert reload(payment).status == "cancelled"
    r = signed_in.post(f"/dashboard/payments/{payment.public_id}/cancel", data={"csrf_token": token},
                       follow_redirects=True)
    assert "can no longer be cancelled" in r.text


def test_create_a_payment_link(signed_in, merchant, http):
    token = token_of(signed_in, "/dashboard/payments/new")
    form = {"csrf_token": token, "amount": "12.5", "currency": "USD", "reference": "INV-7", "description": "Batik",
            "customer_email": "Buyer@Shop.Example", "return_url": "https://shop.example/thanks", "expires_in": "86400"}
    r = signed_in.post("/dashboard/payments/new", data={**form, "amount": "12.3456"})
    assert r.status_code == 422 and "more decimals than USD allows" in r.text
    r = signed_in.post("/dashboard/payments/new", data={**form, "return_url": "ftp://nope"})
    assert r.status_code == 422 and "http(s) URL" in r.text
    r = signed_in.post("/dashboard/payments/new", data=form)
    assert r.status_code == 200 and "12.50 US dollars" in r.text  # shown back in words, nothing created yet
    assert db.session.query(Payment).filter_by(reference="INV-7").count() == 0
    r = signed_in.post("/dashboard/payments/new", data={**form, "confirmed_amount": "1250 USD"},
                       follow_redirects=True)
    assert "Payment link created for $12.50" in r.text
    payment = db.session.query(Payment).filter_by(reference="INV-7").one()
    assert (payment.amount, payment.currency, payment.customer_email) == (1250, "USD", "buyer@shop.example")
    assert (payment.expires_at - payment.created_at) == timedelta(days=1)
    link = re.search(r'id="checkout-url" type="text" value="([^"]+)"', r.text).group(1)
    assert http.get(link).status_code == 200
    # The next link suggests the same back-to-shop address.
    assert 'value="https://shop.example/thanks"' in signed_in.get("/dashboard/payments/new").text


def _confirmation(html):
    return re.search(r'name="confirmed_amount" type="hidden" value="([^"]*)"', html).group(1)


def test_payment_link_amount_is_read_by_the_currency_and_shown_back_in_words(signed_in):
    """Regression: "125.000" VND was taken as 125 ₫ (VND has no decimals; Vietnamese group thousands with
    a dot). The amount is read by the currency's decimals, confirmed in words, then created."""
    token = token_of(signed_in, "/dashboard/payments/new")
    form = {"csrf_token": token, "amount": "125.000", "currency": "VND", "reference": "VN-1",
            "return_url": "https://shop.example/thanks", "expires_in": "86400"}
    r = signed_in.post("/dashboard/payments/new", data=form)
    assert r.status_code == 200 and "125,000 Vietnamese dong" in r.text
    assert _confirmation(r.text) == "125000 VND"
    # Changing the amount after seeing the words asks again for the new amount: nothing is created unseen.
    r = signed_in.post("/dashboard/payments/new", data={**form, "amount": "250.000", "confirmed_amount": "125000 VND"})
    assert r.status_code == 200 and "250,000 Vietnamese dong" in r.text and _confirmation(r.text) == "250000 VND"
    assert db.session.query(Payment).filter_by(reference="VN-1").count() == 0
    r = signed_in.post("/dashboard/payments/new", data={**form, "amount": "250.000", "confirmed_amount": "250000 VND"},
                       follow_redirects=True)
    assert "Payment link created for 250,000 ₫" in r.text
    assert db.session.query(Payment).filter_by(reference="VN-1").one().amount == 250_000
    # An entry that reads two ways is refused on the form, with how to write either.
    r = signed_in.post("/dashboard/payments/new", data={**form, "reference": "US-1", "currency": "USD",
                                                         "amount": "1.250"})
    assert r.status_code == 422 and "ambiguous: write 1,250.00 or 1.25" in r.text
    assert db.session.query(Payment).filter_by(reference="US-1").count() == 0


def test_money_and_gateway_names_are_shown_for_people(signed_in, merchant, factories, http, run_jobs):
    """Regression: the timeline said "of 50000" for ৳500.00, and pages showed gateway codes (`testcard`)."""
    from app.services.refunds import request_refund

    payment = factories.payment(merchant, currency="BDT", amount=150_000, reference="BD-1")
    pay(http, payment)
    request_refund(reload(payment), 50_000, source="test")
    run_jobs()
    detail = signed_in.get(f"/dashboard/payments/{payment.public_id}").text
    timeline = detail[detail.index('id="h-timeline"'):]
    assert "of 50000" not in timeline and "of ৳500.00" in timeline
    assert ">testcard<" not in detail and "Card (test acquirer)</td>" in detail  # the attempts table
    assert "from testcard" not in timeline and "from Card (test acquirer)" in timeline
    listing = signed_in.get("/dashboard/payments").text
    assert '<td data-label="Gateway">Card (test acquirer)</td>' in listing
    overview = signed_in.get("/dashboard/").text
    assert ">testcard<" not in overview and "Card (test acquirer)" in overview
    refunds = signed_in.get("/dashboard/refunds").text
    assert "<small>testcard</small>" not in refunds and "Card (test acquirer)" in refunds


def test_search_by_the_start_of_a_reference_email_or_name(signed_in, merchant, other, factories):
    """Regression: search was exact only. Now the start of the reference (as written), of the customer's
    email or of their name (any case) finds the payment; short or unrelated text finds nothing extra."""
    factories.payment(merchant, reference="INV-2026-0042", customer={"email": "Sari.Dewi@Mail.Example",
                                                                     "name": "Sari Dewi"})
    factories.payment(merchant, reference="INV-2026-0107", customer={"name": "Ömer Çelik"})
    factories.payment(merchant, reference="ORD-9", customer={"email": "budi@shop.example"})
    factories.payment(other, reference="INV-2026-0043", customer={"email": "sari@other.example", "name": "Sari X"})
    get = lambda q: sorted(_refs(signed_in.get("/dashboard/payments", query_string={"q": q}).text))  # noqa: E731
    assert get("INV-2026") == ["INV-2026-0042", "INV-2026-0107"]
    assert get("INV-2026-01") == ["INV-2026-0107"]
    assert get("inv-2026") == []  # a reference is the merchant's own text, matched as written
    assert get("sari.d") == ["INV-2026-0042"] and get("SARI.DEWI@") == ["INV-2026-0042"]
    assert get("sari dew") == ["INV-2026-0042"] and get("SARI") == ["INV-2026-0042"]  # the other merchant's: never
    assert get("ömer ç") == ["INV-2026-0107"] and get("ÖMER") == ["INV-2026-0107"]
    assert get("bud") == ["ORD-9"]
    assert get("100%") == [] and get("INV_2026") == [] and get("in%") == []  # LIKE's wildcards are text here
    assert get("Sa") == []  # under three characters only exact matches count
    assert get("ORD-9") == ["ORD-9"]  # exact still works


def test_a_broad_search_pages_through_every_match_once_in_order(signed_in, merchant, other, factories,
                                                                 monkeypatch):
    """Each condition of the search takes only a page of rows (newest first, after the cursor) before the
    union merges them: paging the list or the CSV must still give every match exactly once, newest first,
    whichever conditions a payment meets and however their times interleave (ties broken by id)."""
    monkeypatch.setattr("app.dashboard.payments.PAGE_SIZE", 3)
    monkeypatch.setattr("app.dashboard.payments.CSV_BATCH", 2)
    kinds = [{"reference": "sar-{i}"}, {"customer": {"email": "sari{i}@mail.example"}},
             {"customer": {"name": "Sari Customer{i}"}}, {"reference": "ORD-{i}", "customer": {"name": "Budi"}},
             {"reference": "sar-both-{i}", "customer": {"email": "sara{i}@mail.example", "name": "Sari"}}]
    now = utcnow().replace(microsecond=0)
    expected = []
    for i in range(20):
        fields = {k: (v.format(i=i) if isinstance(v, str) else {n: t.format(i=i) for n, t in v.items()})
                  for k, v in kinds[i % len(kinds)].items()}
        fields.setdefault("reference", f"R-{i}")
        payment = factories.payment(merchant, currency="USD" if i % 4 else "VND", **fields)
        # Times interleave the kinds; every third pair shares a second, so the id decides their order.
        db.session.execute(update(Payment).where(Payment.id == payment.id)
                           .values(created_at=now - timedelta(seconds=(i * 7) % 13 // 2)))
        if i % len(kinds) != 3:
            expected.append(payment.id)
    factories.payment(other, reference="sar-other", customer={"name": "Sari Other"})  # never shown
    db.session.commit()
    order = {p.id: (p.created_at, p.id) for p in db.session.query(Payment).filter(Payment.id.in_(expected))}
    expected.sort(key=order.get, reverse=True)
    references = {p.id: p.reference for p in db.session.query(Payment)}

    def listed(**query):
        seen, url = [], "/dashboard/payments?" + "&".join(f"{k}={v}" for k, v in query.items())
        while url:
            html = signed_in.get(url).text
            seen += _refs(html)
            match = re.search(r'href="([^"]+)" rel="next"', html)
            url = match.group(1).replace("&amp;", "&") if match else None
        return seen

    assert len(expected) == 16
    assert listed(q="sar") == [references[i] for i in expected]
    assert listed(q="SARI", currency="USD") == [references[i] for i in expected
                                                if "sari" in str(db.session.get(Payment, i).customer).lower()
                                                and db.session.get(Payment, i).currency == "USD"]
    rows = list(csv.DictReader(io.StringIO(signed_in.get("/dashboard/payments.csv?q=sar").text)))
    assert [row["reference"] for row in rows] == [references[i] for i in expected]


def test_prefix_search_is_served_by_indexes(merchant, factories):
    """The prefix conditions walk the search indexes on either database (no scan of the merchant's rows)."""
    from sqlalchemy import text
    from werkzeug.datastructures import MultiDict

    factories.payment(merchant, reference="INV-1", customer={"email": "a@b.example", "name": "Ana"})
    from sqlalchemy import select

    statement = queries.payments_query(queries.PaymentFilters.from_args(MultiDict({"q": "INV-"})), merchant.id,
                                       limit=queries.PAGE_SIZE + 1)
    compiled = statement.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            # Enough rows that the planner's choice of index means something (2,000 copies of the payment).
            fresh = {"public_id": "'pay_c' || g", "checkout_token": "'tok_c' || g", "reference": "'R-' || g",
                     "customer_email": "'e' || g || '@x.example'", "customer_name": "'n' || g"}
            columns = [c.name for c in Payment.__table__.columns if c.name != "id"]
            conn.execute(text(f"INSERT INTO payments ({', '.join(columns)}) SELECT "
                              f"{', '.join(fresh.get(c, f'p.{c}') for c in columns)} "
                              "FROM payments p, generate_series(1, 2000) g"))
            conn.execute(text("ANALYZE payments"))
            for column in ("reference", "customer_email", "customer_name"):
                one = select(Payment.id).where(Payment.merchant_id == merchant.id,
                                               queries.starts_with(getattr(Payment, column), "r-12"))
                sql = one.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
                plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
                # The LIKE prefix became an index range (text_pattern_ops) on that column's index.
                assert f"ix_payments_merchant_{column}" in plan and "~>=~" in plan, plan
        else:
            plan = "\n".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
            for column in ("reference", "customer_email", "customer_name"):
                assert f"INDEX ix_payments_merchant_{column} (merchant_id=? AND {column}>? AND {column}<?)" in plan, plan


def test_time_left_on_a_long_link_reads_in_days_and_hours(signed_in, merchant, factories):
    """Regression: a week's link read "167h 59m"; the payment page says how long it stays open in words."""
    week = factories.payment(merchant, expires_in=7 * 86400 - 30)
    html = signed_in.get(f"/dashboard/payments/{week.public_id}").text
    assert "(in 7 days)" in html and "167h" not in html
    soon = factories.payment(merchant, expires_in=2 * 3600 + 5 * 60 - 10)
    assert "(in 2 hours 5 minutes)" in signed_in.get(f"/dashboard/payments/{soon.public_id}").text
    _set(soon, Status.CANCELLED)
    assert "(in " not in signed_in.get(f"/dashboard/payments/{soon.public_id}").text  # closed: no time left
