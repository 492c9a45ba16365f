"""The payments list's filters, search and keyset pagination, shared by the list page, the CSV export and
bench/dashboard.py. Every query starts from the signed-in merchant's own rows.

Filters arrive as URL query parameters so they survive pagination, bookmarks and the links from the
overview: status (repeatable), gateway, currency, from / to (dates, UTC, `to` inclusive), q (search) and
after (the keyset cursor `<created_at ISO>~<id>`).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from sqlalchemy import and_, func, or_, select, tuple_, union

from app import money
from app.extensions import db
from app.gateways import REGISTRY
from app.models import Payment, PaymentAttempt
from app.state_machine import Status

PAGE_SIZE = 50
#: Shorter text is searched for exact matches only (a prefix of one or two characters matches too much).
PREFIX_MIN = 3
STATUSES = [s.value for s in Status]


def _date(value):
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass
class PaymentFilters:
    statuses: list = field(default_factory=list)
    gateway: str | None = None
    currency: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: str | None = None
    #: What in the URL could not be understood (shown to the merchant instead of silently ignored).
    problems: list = field(default_factory=list)

    @classmethod
    def from_args(cls, args):
        f = cls()
        for s in args.getlist("status"):
            if s in STATUSES:
                f.statuses.append(s)
            elif s:
                f.problems.append(f"unknown status “{s}”")
        gateway = args.get("gateway") or None
        if gateway and gateway not in REGISTRY:
            f.problems.append(f"unknown gateway “{gateway}”")
        else:
            f.gateway = gateway
        currency = (args.get("currency") or "").upper() or None
        if currency and currency not in money.EXPONENTS:
            f.problems.append(f"unknown currency “{currency}”")
        else:
            f.currency = currency
        for name, attr in (("from", "date_from"), ("to", "date_to")):
            raw = args.get(name)
            value = _date(raw)
            if raw and value is None:
                f.problems.append(f"“{raw}” is not a date (use YYYY-MM-DD)")
            setattr(f, attr, value)
        q = (args.get("q") or "").strip()
        f.q = q[:200] or None
        return f

    @property
    def active(self):
        return bool(self.statuses or self.gateway or self.currency or self.date_from or self.date_to or self.q)

    def params(self):
        """The filters as URL parameters (a list of pairs, so status can repeat)."""
        pairs = [("status", s) for s in self.statuses]
        for name, value in (("gateway", self.gateway), ("currency", self.currency), ("q", self.q),
                            ("from", self.date_from and self.date_from.isoformat()),
                            ("to", self.date_to and self.date_to.isoformat())):
            if value:
                pairs.append((name, value))
        return pairs

    def query_string(self, **extra):
        pairs = self.params() + [(k, v) for k, v in extra.items() if v]
        return urlencode(pairs)

    def narrow(self, query, merchant_id):
        """`query` limited to the merchant's rows and every filter but the search."""
        query = query.where(Payment.merchant_id == merchant_id)
        if self.statuses:
            query = query.where(Payment.status.in_(self.statuses))
        if self.gateway:
            query = query.where(Payment.gateway == self.gateway)
        if self.currency:
            query = query.where(Payment.currency == self.currency)
        if self.date_from:
            query = query.where(Payment.created_at >= datetime.combine(self.date_from, time.min))
        if self.date_to:
            query = query.where(Payment.created_at < datetime.combine(self.date_to + timedelta(days=1), time.min))
        return query

    def search_matches(self, merchant_id):
        """The conditions of which a payment must meet one to match the search, each served by an index:
        exact matches of our id, the merchant's reference, the gateway's references and the customer's email;
        and, from PREFIX_MIN characters on, the start of the reference (as written), of the email or of the
        customer's name (both stored lower-cased)."""
        q = self.q
        by_attempt = select(PaymentAttempt.payment_id).where(
            PaymentAttempt.merchant_id == merchant_id,
            or_(PaymentAttempt.reference == q, PaymentAttempt.transaction_id == q, PaymentAttempt.public_id == q))
        matches = [Payment.id.in_(by_attempt), Payment.public_id == q, Payment.reference == q,
                   Payment.customer_email == q.lower()]
        if len(q) >= PREFIX_MIN:
            matches += [starts_with(Payment.reference, q), starts_with(Payment.customer_email, q.lower()),
                        starts_with(Payment.customer_name, q.lower())]
        return matches


def starts_with(column, prefix):
    """`column` starts with `prefix`, written so the database walks an index on it: on PostgreSQL a LIKE
    with a constant pattern (the index has text_pattern_ops; `%` and `_` in the text are escaped), on SQLite
    the range [prefix, prefix with its last character's successor) of the BINARY-ordered index, plus an exact
    check of the start for characters at the top of Unicode."""
    if db.engine.dialect.name == "postgresql":
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped + "%", escape="\\")
    conditions = [column >= prefix, func.substr(column, 1, len(prefix)) == prefix]
    after = ord(prefix[-1]) + 1
    after = 0xE000 if 0xD800 <= after <= 0xDFFF else after  # no surrogate: it cannot be stored
    if after <= 0x10FFFF:
        conditions.append(column < prefix[:-1] + chr(after))
    return and_(*conditions)


def encode_cursor(payment):
    return f"{payment.created_at.isoformat()}~{payment.id}"


def decode_cursor(value):
    """(created_at, id) from a cursor, or None when it is missing or malformed."""
    if not value:
        return None
    stamp, _, ident = value.partition("~")
    try:
        return datetime.fromisoformat(stamp), int(ident)
    except ValueError:
        return None


NEWEST_FIRST = (Payment.created_at.desc(), Payment.id.desc())


def payments_query(filters, merchant_id, after=None, *, limit):
    """The first `limit` filtered payments, newest first, after the cursor (created_at, id).

    A search is one SELECT per condition, joined by UNION (as one OR, neither database can use an index for
    it). Each SELECT carries the filters, the cursor, the order and the limit itself, so the database can walk
    the prefix's index when it is rare, or the merchant's created_at index until `limit` rows match when it
    is common (the first four digits of a reference: tens of thousands of matches at a million payments),
    and the outer query only merges and sorts at most `limit` rows per condition. The newest `limit` of the
    union are among them: each is in the newest `limit` of every condition it meets."""
    def newest(query):
        query = filters.narrow(query, merchant_id)
        if after:
            # A row-value comparison, so PostgreSQL walks the (…, created_at, id) index from the cursor on
            # (written as an OR it would read and discard every newer row: slow deep pages).
            query = query.where(tuple_(Payment.created_at, Payment.id) < tuple_(*after))
        return query.order_by(*NEWEST_FIRST).limit(limit)

    if not filters.q:
        return newest(select(Payment))
    # Each branch is wrapped in a subquery: SQLite accepts no ORDER BY or LIMIT on a member of a UNION.
    branches = [newest(select(Payment.id, Payment.created_at).where(match)).subquery()
                for match in filters.search_matches(merchant_id)]
    found = union(*(select(b.c.id, b.c.created_at) for b in branches)).subquery()
    return select(Payment).join(found, Payment.id == found.c.id).order_by(*NEWEST_FIRST).limit(limit)
