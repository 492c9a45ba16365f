"""Money rules: integer minor units plus an ISO 4217 currency, never floats.

`EXPONENTS` is how many minor-unit digits each supported currency has *in Paysmith*. VND and IDR have no
minor unit in practice (ISO lists IDR with 2, but no one pays in sen), so 10,000 VND is stored as 10000.
Gateway-specific scaling (VNPay ×100, Khalti paisa) lives in that gateway's adapter, not here.
"""

from decimal import Decimal

EXPONENTS = {
    "VND": 0,
    "IDR": 0,
    "BDT": 2,
    "NPR": 2,
    "USD": 2,
    "INR": 2,
    "SGD": 2,
    "MYR": 2,
    "THB": 2,
    "PHP": 2,
    "EUR": 2,
}

SYMBOLS = {"VND": "₫", "IDR": "Rp", "BDT": "৳", "NPR": "Rs", "USD": "$", "INR": "₹", "EUR": "€"}

#: Largest amount accepted in minor units (fits a signed 64-bit column with room to sum).
MAX_AMOUNT = 10**15


class MoneyError(ValueError):
    """An amount or currency that Paysmith refuses."""


def normalize_currency(code):
    """Return the upper-case ISO code if it is supported, else raise MoneyError."""
    if not isinstance(code, str):
        raise MoneyError("currency must be a 3-letter ISO code")
    upper = code.strip().upper()
    if upper not in EXPONENTS:
        raise MoneyError(f"currency {code!r} is not supported; use one of {', '.join(sorted(EXPONENTS))}")
    return upper


def validate_amount(amount, *, allow_zero=False):
    """Return `amount` if it is an int of minor units in range (bools and floats are refused)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError("amount must be an integer in minor units")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError("amount must be positive")
    if amount > MAX_AMOUNT:
        raise MoneyError("amount is too large")
    return amount


def exponent(currency):
    return EXPONENTS[normalize_currency(currency)]


def to_decimal(amount, currency):
    """Minor units → Decimal major units, exact (12345 USD → Decimal('123.45'))."""
    return Decimal(amount).scaleb(-exponent(currency))


def to_minor(value, currency):
    """A decimal string or Decimal in major units → int minor units; raises if it has too many decimals."""
    try:
        dec = Decimal(str(value).strip())
    except Exception as exc:  # decimal.InvalidOperation and friends
        raise MoneyError(f"{value!r} is not a decimal amount") from exc
    if not dec.is_finite():
        raise MoneyError(f"{value!r} is not a decimal amount")
    scaled = dec.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{value!r} has more decimals than {currency} allows")
    return int(scaled)


def format_plain(amount, currency):
    """Major units with the currency's decimals and no grouping: 12345 USD → '123.45', 10000 VND → '10000'."""
    exp = exponent(currency)
    return f"{to_decimal(amount, currency):.{exp}f}"


def format_money(amount, currency):
    """Display form for people: 12345 USD → '$123.45', 150000 VND → '150,000 ₫'."""
    currency = normalize_currency(currency)
    exp = EXPONENTS[currency]
    sign = "-" if amount < 0 else ""
    number = f"{abs(to_decimal(amount, currency)):,.{exp}f}"
    symbol = SYMBOLS.get(currency)
    if currency == "VND":
        return f"{sign}{number} {symbol}"
    if symbol:
        sep = " " if symbol.isalpha() else ""
        return f"{sign}{symbol}{sep}{number}"
    return f"{sign}{number} {currency}"
