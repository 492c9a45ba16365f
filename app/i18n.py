"""The shopper's language: Flask-Babel, the choice of locale, and CLDR formatting of amounts, dates and the
countdown on checkout and sandbox pages.

Languages: English (the source text), Vietnamese, Indonesian, Nepali and Bengali; catalogues live in
app/translations/<lang>/LC_MESSAGES/messages.po (compiled .mo committed beside them; README, "Languages").

The language of a request is, in order: `?lang=` (then remembered in the `lang` cookie), the cookie, the
browser's `Accept-Language`, then the merchant's default for the payment (`default_locale_for`). The
dashboard stays English.

Formatting uses a CLDR locale made of the language and the country of the payment's currency (vi_VN, id_ID,
ne_NP, bn_BD; English in Bangladesh or Nepal uses en_IN, which groups in lakhs like them). Amounts stay
integer minor units until app.money turns them into an exact Decimal; Babel only lays the digits out.
"""

from copy import copy
from datetime import UTC
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import get_currency_symbol, parse_pattern
from flask import g, has_request_context, request
from flask_babel import Babel, force_locale, get_locale, get_translations, ngettext
from flask_babel import gettext as _

from app import money

#: Language codes offered to shoppers, with their own names for the switch.
LANGUAGES = {"en": "English", "vi": "Tiếng Việt", "id": "Bahasa Indonesia", "ne": "नेपाली", "bn": "বাংলা"}
DEFAULT_LANGUAGE = "en"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

#: The country whose conventions a currency's shoppers read; and that country's language.
CURRENCY_COUNTRY = {"VND": "VN", "IDR": "ID", "NPR": "NP", "BDT": "BD", "INR": "IN"}
COUNTRY_LANGUAGE = {"VN": "vi", "ID": "id", "NP": "ne", "BD": "bn"}
#: Where CLDR has no <lang>_<country>, the nearest locale that writes numbers the same way.
FALLBACK_FORMAT_LOCALE = {("en", "BD"): "en_IN", ("en", "NP"): "en_IN"}
COUNTRY_TIMEZONE = {"VN": "Asia/Ho_Chi_Minh", "ID": "Asia/Jakarta", "NP": "Asia/Kathmandu", "BD": "Asia/Dhaka",
                    "IN": "Asia/Kolkata"}

babel = Babel()


def register_i18n(app):
    """Flask-Babel with our locale selector, the shopper filters, the switch's links and the `lang` cookie."""
    babel.init_app(app, locale_selector=select_locale, default_locale=DEFAULT_LANGUAGE)
    app.jinja_env.filters["shopper_money"] = lambda amount, currency: format_shopper_money(amount, currency)
    app.jinja_env.filters["money_words"] = lambda amount, currency: format_money_words(amount, currency)
    app.jinja_env.filters["shopper_datetime"] = lambda value, currency: format_shopper_datetime(value, currency)
    app.jinja_env.globals["shopper_language"] = current_language
    app.jinja_env.globals["language_links"] = language_links
    app.jinja_env.globals["countdown_text"] = countdown_text
    app.jinja_env.globals["countdown_formats"] = countdown_formats
    app.jinja_env.globals["duration_words"] = duration_words
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["tr"] = translate

    @app.after_request
    def remember_language(response):
        chosen = _requested_language()
        if chosen and request.cookies.get(COOKIE) != chosen:
            response.set_cookie(COOKIE, chosen, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True,
                                secure=app.config.get("SESSION_COOKIE_SECURE", False))
        return response


def translate(message):
    """A text that reached a page as a plain string (an error from code, a simulator's message) in the page's
    language when a catalogue has it, else as it is. Unlike `_()` in a template it never %-formats."""
    if message is None or message == "":
        return message
    return get_translations().ugettext(str(message))


def default_locale_for(payment):
    """The merchant's default language for a payment. Today derived from its currency (VND→vi, IDR→id,
    NPR→ne, BDT→bn, else en); the one place to point at a merchant setting later."""
    if payment is None:
        return DEFAULT_LANGUAGE
    return COUNTRY_LANGUAGE.get(CURRENCY_COUNTRY.get(payment.currency), DEFAULT_LANGUAGE)


def _supported(code):
    code = (code or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else None


def _requested_language():
    if not has_request_context() or request.path.startswith("/dashboard"):
        return None
    return _supported(request.args.get("lang"))


def _payment_of_request():
    """The payment a checkout page is about (for its merchant's default language), or None."""
    if "checkout_payment" in g:
        return g.checkout_payment
    payment = None
    token = (request.view_args or {}).get("token")
    if request.blueprint == "checkout" and token:
        from app.services.payments import by_checkout_token

        payment = by_checkout_token(token)
    g.checkout_payment = payment
    return payment


def select_locale():
    """?lang=, then the `lang` cookie, then Accept-Language, then the merchant's default for the payment."""
    if not has_request_context():
        return getattr(g, "forced_language", None) or DEFAULT_LANGUAGE
    if request.path.startswith("/dashboard"):
        return DEFAULT_LANGUAGE
    return (_requested_language() or _supported(request.cookies.get(COOKIE))
            or request.accept_languages.best_match(list(LANGUAGES))
            or default_locale_for(_payment_of_request()))


def current_language():
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT_LANGUAGE


def language_links():
    """(code, own name, URL of this page in that language, is current) for the language switch."""
    from urllib.parse import urlencode

    current = current_language()
    links = []
    for code, name in LANGUAGES.items():
        args = request.args.to_dict(flat=False)
        args["lang"] = [code]
        links.append((code, name, request.path + "?" + urlencode(args, doseq=True), code == current))
    return links


# --- formatting -----------------------------------------------------------------------------------------

def format_locale(language, currency):
    """The CLDR locale for a shopper's language and the payment's currency: vi + VND → vi_VN, en + BDT →
    en_IN (CLDR has no en_BD; India groups in lakhs as Bangladesh does), en + VND → en."""
    language = _supported(language) or DEFAULT_LANGUAGE
    country = CURRENCY_COUNTRY.get((currency or "").upper())
    if country:
        for name in (f"{language}_{country}", FALLBACK_FORMAT_LOCALE.get((language, country))):
            if name:
                try:
                    return Locale.parse(name)
                except (UnknownLocaleError, ValueError):
                    continue
    return Locale.parse(language)


def _needs_space(symbol_char, digit_side):
    # CLDR currencySpacing: a symbol ending (or starting) in a letter is kept apart from the digits by a
    # no-break space ("Rp 850.000", "Rs 1,200.00"); Babel does not apply that rule itself.
    return symbol_char.isalpha() and digit_side


def format_money_in(amount, currency, locale):
    """Integer minor units → text in a CLDR locale, with the currency's minor digits as app.money defines
    them (VND and IDR none): vi_VN 125000 VND → '125.000 ₫', bn_BD 15000000 BDT → '1,50,000.00৳'."""
    currency = money.normalize_currency(currency)
    value = money.to_decimal(amount, currency)  # exact Decimal, never a float
    locale = Locale.parse(locale)
    digits = money.exponent(currency)
    pattern = copy(parse_pattern(locale.currency_formats["standard"]))
    pattern.frac_prec = (digits, digits)
    cldr_symbol = get_currency_symbol(currency, locale)
    symbol = cldr_symbol
    if cldr_symbol == currency and currency in money.SYMBOLS:
        symbol = money.SYMBOLS[currency]  # CLDR knows only the ISO code here; shoppers read the sign
    text = pattern.apply(value, locale, currency=currency, currency_digits=False)
    if symbol != cldr_symbol:
        text = text.replace(cldr_symbol, symbol)
    at = text.find(symbol)
    if at >= 0:
        before, after = text[:at], text[at + len(symbol):]
        if after[:1].isdigit() and _needs_space(symbol[-1], True):
            text = before + symbol + "\xa0" + after
        elif before[-1:].isdigit() and _needs_space(symbol[0], True):
            text = before + "\xa0" + symbol + after
    return text


def typing_locale(currency):
    """The locale whose decimal and group marks a person's typed amount is read in: the browser's language
    (the dashboard's pages stay English, its users need not type like the English) in the currency's
    country (see format_locale)."""
    language = (request.accept_languages.best_match(list(LANGUAGES)) if has_request_context() else None)
    return format_locale(language or DEFAULT_LANGUAGE, currency)


def parse_typed_amount(text, currency):
    """A typed amount → int minor units, by the currency's decimals and the typist's locale (MoneyError)."""
    return money.parse_amount(text, currency, typing_locale(currency))


def format_money_words(amount, currency, language=DEFAULT_LANGUAGE):
    """An amount with the currency's name in `language` (the dashboard's English by default), to confirm
    what was typed: 125000 VND → '125,000 Vietnamese dong', 1250 USD → '12.50 US dollars' (CLDR names and
    plural forms)."""
    from babel.numbers import format_decimal, get_currency_name

    currency = money.normalize_currency(currency)
    value = money.to_decimal(amount, currency)
    locale = Locale.parse(_supported(language) or DEFAULT_LANGUAGE)
    digits = money.exponent(currency)
    number = format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""), locale=locale,
                            decimal_quantization=False)
    return f"{number} {get_currency_name(currency, count=value, locale=locale)}"


def format_shopper_money(amount, currency, language=None):
    """An amount for the shopper reading this page (or in `language`)."""
    return format_money_in(amount, currency, format_locale(language or current_language(), currency))


def format_shopper_datetime(value, currency, language=None):
    """A naive-UTC datetime in the shopper's language, in the time zone of the currency's country."""
    if value is None:
        return ""
    locale = format_locale(language or current_language(), currency)
    zone = ZoneInfo(COUNTRY_TIMEZONE.get(CURRENCY_COUNTRY.get((currency or "").upper()), "UTC"))
    aware = value.replace(tzinfo=UTC)
    return format_datetime(aware, "medium", tzinfo=zone, locale=locale) + " " + \
        format_datetime(aware, "ZZZZ", tzinfo=zone, locale=locale)  # "GMT+07:00", in the locale's words


def countdown_text(seconds_left):
    """The time left to pay: '4:05' under an hour, '2 h 05 min' under a day, '3 days 4 h' beyond ('2 days'
    on the hour)."""
    seconds_left = max(0, int(seconds_left))
    days, rest = divmod(seconds_left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days and not hours:
        return ngettext("%(num)d day", "%(num)d days", days)
    if days:
        return ngettext("%(num)d day %(hours)d h", "%(num)d days %(hours)d h", days, hours=hours)
    if hours:
        return _("%(hours)d h %(minutes)02d min", hours=hours, minutes=minutes)
    return f"{minutes}:{seconds:02d}"


def duration_words(seconds, language=DEFAULT_LANGUAGE):
    """A wait or time left in CLDR words, to the minute (rounded up), in its two largest units:
    '6 days 23 hours', '2 days', '3 hours 5 minutes', '14 minutes', '1 minute'."""
    from babel.units import format_unit

    minutes = max(1, -(-int(seconds) // 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "duration-day"), (hours, "duration-hour"), (minutes, "duration-minute")]
    first = next(i for i, (value, _) in enumerate(parts) if value)
    shown = [(v, unit) for v, unit in parts[first:first + 2] if v]
    locale = Locale.parse(_supported(language) or DEFAULT_LANGUAGE)
    return " ".join(format_unit(v, unit, length="long", locale=locale) for v, unit in shown)


def countdown_formats():
    """The countdown's words for checkout.js (placeholders {d}, {h}, {mm}), which keeps it ticking in the
    page's language."""
    translations = get_translations()

    def js(text):
        return text.replace("%(num)d", "{d}").replace("%(hours)d", "{h}").replace("%(minutes)02d", "{mm}")

    day_one, day_many = "%(num)d day %(hours)d h", "%(num)d days %(hours)d h"
    whole_one, whole_many = "%(num)d day", "%(num)d days"
    return {
        "day": js(translations.ungettext(day_one, day_many, 1)),
        "days": js(translations.ungettext(day_one, day_many, 2)),
        "day0": js(translations.ungettext(whole_one, whole_many, 1)),
        "days0": js(translations.ungettext(whole_one, whole_many, 2)),
        "hours": js(translations.ugettext("%(hours)d h %(minutes)02d min")),
        "expired": translations.ugettext("expired"),
    }


__all__ = ["LANGUAGES", "default_locale_for", "force_locale", "format_locale", "format_money_in",
           "format_money_words", "duration_words", "parse_typed_amount", "typing_locale",
           "format_shopper_money", "format_shopper_datetime", "countdown_text", "register_i18n", "select_locale"]
