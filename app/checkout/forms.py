"""Checkout forms (CSRF-protected by Flask-WTF)."""

from flask_wtf import FlaskForm
from wtforms import RadioField


class MethodForm(FlaskForm):
    method = RadioField("Payment method", choices=[])


class CancelForm(FlaskForm):
    pass
