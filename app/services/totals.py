"""Daily payment totals (app/models/totals.py): rolling up the changes the triggers append, and reading them.

`roll_up()` is the periodic `totals` sweep. It is safe to run any number of times at once: on PostgreSQL one
statement deletes a batch of changes (FOR UPDATE SKIP LOCKED, so two runs take disjoint rows) and adds them
to the totals (ON CONFLICT … DO UPDATE, keys in order so two runs never deadlock); on SQLite, where one
writer holds the database at a time, an INSERT … SELECT and a DELETE up to the same id in one transaction.
Either way a change is counted once: it leaves the changes table in the transaction that adds it to a total.
"""

from sqlalchemy import func, literal_column, select, text, union_all

from app.extensions import db
from app.models.totals import PaymentDailyTotal, PaymentTotalChange

#: Changes moved per transaction.
BATCH = 50_000

_KEY = "merchant_id, day, currency, gateway, status"
_UPSERT = (f" ON CONFLICT ({_KEY}) DO UPDATE SET count = payment_daily_totals.count + excluded.count,"
           " amount = payment_daily_totals.amount + excluded.amount")

_POSTGRES = text(f"""
WITH moved AS (
    DELETE FROM payment_total_changes WHERE id IN (
        SELECT id FROM payment_total_changes ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED)
    RETURNING {_KEY}, count, amount),
added AS (
    INSERT INTO payment_daily_totals ({_KEY}, count, amount)
    SELECT {_KEY}, sum(count), sum(amount) FROM moved GROUP BY {_KEY} ORDER BY {_KEY}
    {_UPSERT})
SELECT count(*) FROM moved""")

# SQLite parses `INSERT … SELECT … ON CONFLICT` only when the SELECT has a WHERE clause, which this one has.
_SQLITE_ADD = text(f"""
INSERT INTO payment_daily_totals ({_KEY}, count, amount)
SELECT {_KEY}, sum(count), sum(amount) FROM payment_total_changes WHERE id <= :last GROUP BY {_KEY}
{_UPSERT}""")
_SQLITE_DELETE = text("DELETE FROM payment_total_changes WHERE id <= :last")


def roll_up(batch=BATCH):
    """Move every pending change into the daily totals; return how many changes were moved. Commits."""
    total = 0
    while True:
        if db.engine.dialect.name == "postgresql":
            moved = db.session.execute(_POSTGRES, {"batch": batch}).scalar_one()
        else:
            first, last = db.session.execute(
                select(func.min(PaymentTotalChange.id), func.max(PaymentTotalChange.id))).one()
            if first is None:
                db.session.rollback()
                return total
            last = min(last, first + batch - 1)
            db.session.execute(_SQLITE_ADD, {"last": last})
            moved = db.session.execute(_SQLITE_DELETE, {"last": last}).rowcount
        db.session.commit()
        total += moved
        if moved < batch:
            return total


def totals_statement(merchant_id, first_day, by=("currency", "gateway", "status", "day")):
    """(*by, count, amount) of the merchant's payments created from `first_day` on, grouped by the key columns
    named in `by` (gateway None for a payment not at a gateway yet): the totals plus the changes not rolled up
    yet, in one statement (one snapshot). Groups whose count is 0 are left out."""
    parts = [select(*(getattr(table, name) for name in by), table.count, table.amount)
             .where(table.merchant_id == merchant_id, table.day >= first_day)
             for table in (PaymentDailyTotal, PaymentTotalChange)]
    both = union_all(*parts).subquery()
    keys = [both.c[name] for name in by]
    shown = [func.nullif(column, "") if column.name == "gateway" else column for column in keys]
    count = func.sum(both.c.count)
    return select(*shown, count, func.sum(both.c.amount)).group_by(*keys).having(count != literal_column("0"))
