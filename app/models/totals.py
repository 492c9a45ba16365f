"""Daily payment totals: what the dashboard overview reads instead of grouping a month of payments.

`payment_daily_totals` holds, per merchant, day (the UTC date the payment was created), currency, gateway and
status, how many payments there are and the sum of their amounts. It is a read model derived from `payments`
and kept by the database itself, so no code path (the state machine, a set-based sweep, a migration, a
bulk load) can forget it:

- a trigger on `payments` (migration 0007) appends to `payment_total_changes`, in the writer's own
  transaction, one row (+1, +amount) for a new payment and two rows (−1 from the old key, +1 to the new key)
  whenever a payment's status, gateway, currency, amount or creation day changes. Appending never waits on
  another transaction: a flash sale of one merchant does not queue its callbacks on one hot counter row;
- the `totals` sweep (app.services.totals.roll_up, every TOTALS_ROLLUP_SECONDS) moves those changes into
  the totals set-based (one DELETE … RETURNING feeding one INSERT … ON CONFLICT on PostgreSQL);
- the overview reads the totals plus the changes not rolled up yet, in one statement, so it is exact and live
  whether or not a worker runs.
"""

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class _Key:
    """The columns a total is grouped by. `gateway` is '' for a payment that has not been to a gateway yet
    (a primary key column cannot be NULL)."""

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    day = mapped_column(Date, nullable=False)
    currency: Mapped[str] = mapped_column(String(3))
    gateway: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24))
    count: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)


class PaymentDailyTotal(_Key, db.Model):
    __tablename__ = "payment_daily_totals"
    __table_args__ = (
        db.PrimaryKeyConstraint("merchant_id", "day", "currency", "gateway", "status"),
    )


class PaymentTotalChange(_Key, db.Model):
    """A change to a total not rolled up yet (written by the trigger only; deleted by the roll-up)."""

    __tablename__ = "payment_total_changes"
    __table_args__ = (Index("ix_payment_total_changes_merchant_day", "merchant_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
