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

    def member(self, merchant, role, email=None, password="correct-horse-battery", name=None):
        """A user who is a member of `merchant` with `role` (a new user unless `email` has an account)."""
        from app.services import accounts, team

        self._n += 1
        email = email or f"{role}{self._n}@example.test"
        user = accounts.user_by_email(email) or accounts.new_user(email, name or f"{role.capitalize()} {self._n}",
                                                                 password)
        team.add_member(merchant, user, role)
        db.session.commit()
        return user

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
