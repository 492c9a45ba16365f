"""The overview's numbers, and the links from each number to the list of exactly those payments."""

import re
from html import unescape

from app.models import utcnow
from app.state_machine import Status
from tests.web.dashboard.test_payments import _refs, _set


def _links(html):
    return {unescape(m) for m in re.findall(r'href="(/dashboard/payments\?[^"]+)"', html)}


def test_volume_counts_and_success_rates(signed_in, merchant, other, factories):
    _set(factories.payment(merchant, reference="T1", currency="USD", amount=1000), Status.SUCCEEDED)
    _set(factories.payment(merchant, reference="T2", currency="USD", amount=500), Status.FAILED)
    _set(factories.payment(merchant, reference="W1", currency="USD", amount=2000), Status.SUCCEEDED, days_ago=3)
    _set(factories.payment(merchant, reference="M1", currency="USD", amount=4000), Status.SUCCEEDED, days_ago=20)
    _set(factories.payment(merchant, reference="OLD", currency="USD", amount=8000), Status.SUCCEEDED, days_ago=45)
    _set(factories.payment(merchant, reference="V1", currency="VND", amount=150_000), Status.SUCCEEDED)
    factories.payment(merchant, reference="P1", currency="VND", amount=99_000)  # pending: counted, no volume
    _set(factories.payment(other, reference="X", currency="USD", amount=100_000), Status.SUCCEEDED)

    html = signed_in.get("/dashboard/").text
    usd = html[html.index('id="cur-USD"'):html.index('id="cur-VND"')]
    assert re.findall(r'see these payments">([^<]+)</a>', usd) == ["$10.00", "$30.00", "$70.00"]
    assert re.findall(r">(\d+) succeeded</a>", usd) == ["1", "2", "3"]
    assert re.findall(r">(\d+) payments?</a>", usd) == ["2", "3", "4"]
    vnd = html[html.index('id="cur-VND"'):html.index('id="gw-rate"')]
    assert "150,000 ₫" in vnd and ">1 succeeded</a>" in vnd and ">2 payments</a>" in vnd
    assert "$1,000.00" not in html  # the other merchant's money
    # testcard: 30-day settled payments T1, T2, W1, M1, V1 → 4 of 5 succeeded.
    assert "80.0%" in html and "80%" in html
    assert '<svg viewBox="0 0 600 160" role="img" aria-label="Daily volume in USD"' in html

    # Every number is a link to the list behind it, and the list shows exactly those payments.
    links = _links(html)
    today = utcnow().date().isoformat()
    today_usd = [u for u in links if "currency=USD" in u and "status=succeeded" in u and f"from={today}&to={today}" in u]
    assert today_usd and all(_refs(signed_in.get(u).text) == ["T1"] for u in today_usd)
    thirty = [u for u in links if "currency=USD" in u and "status=" not in u]
    assert sorted(len(_refs(signed_in.get(u).text)) for u in thirty) == [2, 3, 4]
    gateway_paid = [u for u in links if "gateway=testcard" in u and "status=succeeded" in u]
    assert [sorted(_refs(signed_in.get(u).text)) for u in gateway_paid] == [["M1", "T1", "V1", "W1"]]
    bar_days = [u for u in links if "currency=VND" in u and re.search(r"from=(\d{4}-\d\d-\d\d)&to=\1", u)]
    assert any(_refs(signed_in.get(u).text) == ["V1"] for u in bar_days)


def test_empty_overview(signed_in):
    html = signed_in.get("/dashboard/").text
    assert "No payments in the last 30 days yet." in html
    assert "No payment has reached a gateway in the last 30 days." in html


def test_every_change_shows_at_once_whatever_its_day(signed_in, merchant, factories):
    """The totals are live: a payment created days ago that succeeds (or is refunded) counts at the next view,
    whether or not the roll-up has run."""
    from app.services.totals import roll_up

    _set(factories.payment(merchant, reference="OLD1", currency="USD", amount=2000), Status.SUCCEEDED, days_ago=3)
    _set(factories.payment(merchant, reference="NOW1", currency="USD", amount=1000), Status.SUCCEEDED)
    first = signed_in.get("/dashboard/").text
    usd = first[first.index('id="cur-USD"'):]
    assert re.findall(r'see these payments">([^<]+)</a>', usd)[:2] == ["$10.00", "$30.00"]

    roll_up()
    _set(factories.payment(merchant, reference="NOW2", currency="USD", amount=500), Status.SUCCEEDED)
    old2 = factories.payment(merchant, reference="OLD2", currency="USD", amount=4000)
    _set(old2, days_ago=3)
    _set(old2, Status.SUCCEEDED)
    html = signed_in.get("/dashboard/").text
    usd = html[html.index('id="cur-USD"'):]
    assert re.findall(r'see these payments">([^<]+)</a>', usd)[:2] == ["$15.00", "$75.00"]
    roll_up()
    html = signed_in.get("/dashboard/").text
    usd = html[html.index('id="cur-USD"'):]
    assert re.findall(r'see these payments">([^<]+)</a>', usd)[:2] == ["$15.00", "$75.00"]
