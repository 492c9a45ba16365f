"""The overview: volume and counts per currency (today, 7 and 30 days), success rate per gateway, and two
server-drawn SVG charts. Every number links to the payments list filtered to exactly the rows behind it.

Everything comes from the daily payment totals (app/models/totals.py), exact and live (the totals plus the
changes not rolled up yet), grouped by the database into what the page shows: per currency, status and day
(at most a few hundred rows for 30 days), and per gateway and status, instead of every payment of the month.
"""

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import g as request_state
from flask import render_template, url_for

from app.dashboard import bp
from app.dashboard.access import current_merchant, requires
from app.extensions import db
from app.models import utcnow
from app.services.totals import totals_statement
from app.state_machine import PAID, Status

WINDOWS = (("today", "Today", 1), ("7d", "Last 7 days", 7), ("30d", "Last 30 days", 30))
PAID_VALUES = sorted(s.value for s in PAID)
#: Outcomes a success rate divides by: settled one way or the other (open payments are not counted yet).
SETTLED = set(PAID_VALUES) | {Status.FAILED.value, Status.CANCELLED.value, Status.EXPIRED.value}


@dataclass
class Bucket:
    count: int = 0
    paid_count: int = 0
    volume: int = 0

    def add(self, status, count, amount):
        self.count += count
        if status in PAID_VALUES:
            self.paid_count += count
            self.volume += amount


def build_overview(merchant_id, now=None):
    today = (now or utcnow()).date()
    first = {key: today - timedelta(days=days - 1) for key, _, days in WINDOWS}
    per_currency = defaultdict(lambda: {key: Bucket() for key, _, _ in WINDOWS})
    daily = defaultdict(lambda: defaultdict(int))  # currency → day → paid volume
    by_day = totals_statement(merchant_id, first["30d"], by=("currency", "status", "day"))
    for currency, status, day, count, amount in db.session.execute(by_day):
        day = day if not isinstance(day, str) else datetime.strptime(day, "%Y-%m-%d").date()
        count, amount = int(count), int(amount or 0)
        for key, _, _ in WINDOWS:
            if day >= first[key]:
                per_currency[currency][key].add(status, count, amount)
        if status in PAID_VALUES:
            daily[currency][day] += amount
    gateways = defaultdict(lambda: {"settled": 0, "paid": 0, "open": 0})
    by_gateway = totals_statement(merchant_id, first["30d"], by=("gateway", "status"))
    for gateway, status, count, _ in db.session.execute(by_gateway):
        if gateway:
            g = gateways[gateway]
            if status in SETTLED:
                g["settled"] += int(count)
                g["paid"] += int(count) if status in PAID_VALUES else 0
            else:
                g["open"] += int(count)
    days = [first["30d"] + timedelta(days=i) for i in range(30)]
    return {
        "today": today,
        "first": first,
        "currencies": {c: per_currency[c] for c in sorted(per_currency)},
        "daily": {c: [(d, daily[c].get(d, 0)) for d in days] for c in sorted(daily)},
        "gateways": {
            code: {**g, "rate": (g["paid"] / g["settled"]) if g["settled"] else None}
            for code, g in sorted(gateways.items())
        },
    }


def list_url(**filters):
    """The payments list filtered as given (status may be a list). The page has hundreds of these links, so
    the route is looked up once per request and the query is encoded here (url_for was a third of the page's
    time)."""
    base = request_state.get("payments_list_url")
    if base is None:
        base = request_state.payments_list_url = url_for("dashboard.payments")
    query = "&".join(_param(key, one) for key, value in filters.items() if value
                     for one in (value if isinstance(value, list | tuple) else [value]))
    return f"{base}?{query}" if query else base


@lru_cache(maxsize=4096)
def _param(key, value):
    """`key=value` encoded for a query string (the same few codes and dates recur on every page)."""
    return urlencode({key: value})


@bp.get("/")
@requires("payments.read")
def overview():
    data = build_overview(current_merchant.id)
    return render_template("dashboard/overview.html", data=data, windows=WINDOWS, paid=PAID_VALUES,
                           list_url=list_url, bar_chart=bar_chart, rate_chart=rate_chart)


def bar_chart(points, *, width=600, height=160):
    """Geometry for a daily bar chart: [(day, value, x, y, w, h)] scaled to the largest value."""
    top = max((v for _, v in points), default=0) or 1
    step = width / max(len(points), 1)
    bars = []
    for i, (day, value) in enumerate(points):
        h = round(value / top * (height - 20), 1)
        bars.append({"day": day, "value": value, "x": round(i * step + 1, 1), "w": round(step - 2, 1),
                     "y": round(height - h, 1), "h": h})
    return {"bars": bars, "width": width, "height": height, "top": top}


def rate_chart(gateways, *, width=600, row=34):
    """Geometry for horizontal success-rate bars, one row per gateway."""
    label_w = 260  # room for a gateway's display name ("SSLCommerz (cards, mobile banking)" at the label size)
    rows = []
    for i, (code, g) in enumerate(gateways.items()):
        rate = g["rate"] or 0
        rows.append({"code": code, "rate": g["rate"], "settled": g["settled"], "y": i * row,
                     "w": round(rate * (width - label_w - 60), 1), "x": label_w})
    return {"rows": rows, "width": width, "height": max(len(rows), 1) * row, "label_w": label_w}
