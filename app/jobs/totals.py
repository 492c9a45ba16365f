"""The daily payment totals' roll-up (periodic)."""

from app.services import totals


def sweep():
    return totals.roll_up()
