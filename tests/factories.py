"""Factory helpers for tests: merchants with API keys, payments through the real services."""

from app.extensions import db
from app.services.merchants import create_merchant
from app.services.payments import create_payment


class Factories:
    def __init__(self, app):
        self.app = app
        self._n = 0
        self._payments = 0

    def merchant(self, name=None, webhook_url=None, password="correct-horse-battery"):
        """Return (merchant, api_key)."""
        self._n += 1
        merchant, key = create_merchant(name or f"Shop {self._n}", f"shop{self._n}@example.test", password,
                                        webhook_url)
        return merchant, key

    def payment(self, merchant, **overrides):
        self._payments += 1  # each payment its own order unless a test names one
        data = {
            "amount": 150_000,
            "currency": "VND",
            "reference": f"ORDER-{self._n}-{self._payments}",
            "description": "Test order",
            "return_url": "https://shop.example/return",
            "cancel_url": "https://shop.example/cancel",
        }
        data.update(overrides)
        payment = create_payment(merchant, data)
        db.session.refresh(payment)
        return payment
