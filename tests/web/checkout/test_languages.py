"""The checkout in the shopper's language: every catalogue complete, the locale chosen by ?lang= (remembered
in a cookie), Accept-Language, then the merchant's default; amounts, dates and the countdown in CLDR form."""

import os
import re
from datetime import datetime

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from app import ROOT
from app.extensions import db
from app.i18n import (
    LANGUAGES,
    countdown_text,
    default_locale_for,
    format_locale,
    format_money_in,
    format_shopper_datetime,
)
from app.state_machine import Status, transition

TRANSLATIONS = os.path.join(ROOT, "app", "translations")
OTHER = [code for code in LANGUAGES if code != "en"]


def extracted_ids():
    """Every msgid the code and templates use, as `pybabel extract -F babel.cfg` finds them."""
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    method_map = [("app/**.py", "python"), ("templates/**.html", "jinja2"), ("templates/email/**.txt", "jinja2")]
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(ROOT, method_map, keywords=keywords):
        if any(part.startswith(".venv") for part in _file.split(os.sep)):
            continue
        ids.add(message if isinstance(message, str) else tuple(message))
    return ids


def catalogue(lang):
    with open(os.path.join(TRANSLATIONS, lang, "LC_MESSAGES", "messages.po"), "rb") as fh:
        return read_po(fh)


@pytest.mark.parametrize("lang", OTHER)
def test_every_shopper_string_is_translated(lang):
    cat = catalogue(lang)
    missing = []
    for msgid in extracted_ids():
        message = cat.get(msgid if isinstance(msgid, str) else msgid[0])
        strings = [] if message is None else (message.string if isinstance(message.string, tuple)
                                               else [message.string])
        if message is None or not all(strings) or message.fuzzy:
            missing.append(msgid)
    assert not missing, f"{lang}: untranslated (run pybabel update, then translate): {sorted(map(str, missing))}"


@pytest.mark.parametrize("lang", OTHER)
def test_placeholders_survive_translation(lang):
    for message in catalogue(lang):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)\w", ids[-1]))
        for text in strings:
            assert set(re.findall(r"%\(\w+\)\w", text)) == wanted, (lang, message.id, text)


@pytest.mark.parametrize("lang", OTHER)
def test_compiled_catalogue_matches_the_po(lang):
    """The committed .mo is compiled from the committed .po (pybabel compile -d app/translations)."""
    with open(os.path.join(TRANSLATIONS, lang, "LC_MESSAGES", "messages.mo"), "rb") as fh:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(fh) if m.id}
    source = {_key(m.id): _key(m.string) for m in catalogue(lang) if m.id and not m.fuzzy}
    assert compiled == source


def _key(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


# --- formatting ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, amount, currency, shown", [
    ("vi", 125_000, "VND", "125.000\xa0₫"),
    ("vi", 0, "VND", "0\xa0₫"),
    ("bn", 15_000_000, "BDT", "1,50,000.00৳"),
    ("en", 15_000_000, "BDT", "৳1,50,000.00"),
    ("en", 5, "BDT", "৳0.05"),
    ("id", 1_250_000, "IDR", "Rp\xa01.250.000"),
    ("id", -25_000, "IDR", "-Rp\xa025.000"),
    ("en", 1_250_000, "IDR", "Rp\xa01.250.000"),
    ("ne", 12_000_000, "NPR", "नेरू\xa01,20,000.00"),
    ("en", 12_000_000, "NPR", "Rs\xa01,20,000.00"),
    ("en", 4_999, "USD", "$49.99"),
    ("en", 10**15, "VND", "₫1,000,000,000,000,000"),  # exact: Decimal from app.money, never a float
    ("en", 123_456_789_012_345_678, "USD", "$1,234,567,890,123,456.78"),
])
def test_amounts_in_the_shoppers_locale(lang, amount, currency, shown):
    assert format_money_in(amount, currency, format_locale(lang, currency)) == shown


def test_floats_are_not_money():
    with pytest.raises(ValueError):
        format_money_in(1500.0, "USD", "en")


@pytest.mark.parametrize("lang, currency, locale", [("vi", "VND", "vi_VN"), ("id", "IDR", "id_ID"),
                                                     ("ne", "NPR", "ne_NP"), ("bn", "BDT", "bn_BD"),
                                                     ("en", "BDT", "en_IN"), ("en", "VND", "en"),
                                                     ("vi", "USD", "vi")])
def test_cldr_locale_is_language_and_the_currencys_country(lang, currency, locale):
    assert str(format_locale(lang, currency)) == locale


@pytest.mark.parametrize("currency, lang", [("VND", "vi"), ("IDR", "id"), ("NPR", "ne"), ("BDT", "bn"),
                                            ("USD", "en")])
def test_merchant_default_language_from_currency(factories, currency, lang):
    merchant, _ = factories.merchant()
    assert default_locale_for(factories.payment(merchant, currency=currency)) == lang


def test_dates_in_the_shoppers_language_and_zone(app):
    when = datetime(2026, 12, 1, 3, 30)
    with app.test_request_context():
        assert format_shopper_datetime(when, "VND", "vi").startswith("10:30:00 1 thg 12, 2026")
        assert format_shopper_datetime(when, "VND", "en") == "Dec 1, 2026, 10:30:00\u202fAM GMT+07:00"
        assert format_shopper_datetime(when, "USD", "en").endswith("3:30:00\u202fAM GMT+00:00")


@pytest.mark.parametrize("lang, seconds, shown", [
    ("en", 245, "4:05"), ("en", 2 * 3600 + 5 * 60, "2 h 05 min"), ("en", 86400 + 3 * 3600, "1 day 3 h"),
    ("en", 3 * 86400 + 4 * 3600 + 59, "3 days 4 h"), ("vi", 3 * 86400 + 4 * 3600, "3 ngày 4 giờ"),
    ("id", 2 * 86400, "2 hari"), ("bn", 2 * 86400 + 3600, "2 দিন 1 ঘণ্টা"),
    # a week's link: days and hours, whole days alone (regression: "2 days 0 h"; once "167h 59m")
    ("en", 167 * 3600 + 59 * 60 + 30, "6 days 23 h"), ("en", 2 * 86400 + 59, "2 days"), ("en", 86400, "1 day"),
    ("vi", 7 * 86400, "7 ngày"), ("ne", 2 * 86400, "2 दिन"), ("bn", 86400 + 30, "1 দিন"),
    ("ne", 5 * 3600 + 9 * 60, "5 घण्टा 09 मिनेट"),
])
def test_countdown_in_days_and_hours(app, lang, seconds, shown):
    from flask_babel import force_locale

    with app.test_request_context(), force_locale(lang):
        assert countdown_text(seconds) == shown


# --- choosing the language -----------------------------------------------------------------------------

PAY_WORDS = {"en": "Pay with", "vi": "Thanh toán bằng", "id": "Bayar dengan", "ne": "भुक्तानी विधि",
             "bn": "পেমেন্টের মাধ্যম"}


@pytest.fixture
def payment(factories):
    merchant, _ = factories.merchant(name="Toko Sari")
    return factories.payment(merchant, amount=125_000, currency="VND", expires_in=2 * 86400 + 3600)


def html_lang(html):
    return re.search(r'<html lang="(\w+)"', html).group(1)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_accept_language_picks_the_page_language(client, payment, lang):
    html = client.get(f"/pay/{payment.checkout_token}", headers={"Accept-Language": f"{lang};q=0.9"}).text
    assert html_lang(html) == lang and PAY_WORDS[lang] in html
    # The countdown of a payment open for two days reads in days and hours, in the page's language.
    assert 'data-fmt-days="' in html


def test_no_accept_language_falls_back_to_the_merchant_default(client, payment):
    html = client.get(f"/pay/{payment.checkout_token}", headers={"Accept-Language": ""}).text
    assert html_lang(html) == "vi" and "Thanh toán 125.000\xa0₫" in html
    assert "2 ngày 1 giờ" in html or "2 ngày</strong>" in html  # 2 days 1 hour, or 2 days a moment later


def test_an_unoffered_language_falls_back_to_the_merchant_default(client, payment):
    assert html_lang(client.get(f"/pay/{payment.checkout_token}", headers={"Accept-Language": "fr"}).text) == "vi"


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_lang_switch_is_remembered_in_a_cookie(client, payment, lang):
    r = client.get(f"/pay/{payment.checkout_token}?lang={lang}")
    assert html_lang(r.text) == lang and PAY_WORDS[lang] in r.text
    assert f"lang={lang}" in r.headers["Set-Cookie"] and "SameSite=Lax" in r.headers["Set-Cookie"]
    # The cookie outranks the browser's Accept-Language on the next pages, the result page included.
    html = client.get(f"/pay/{payment.checkout_token}", headers={"Accept-Language": "en"}).text
    assert html_lang(html) == lang
    assert html_lang(client.get(f"/pay/{payment.checkout_token}/cancel").text) == lang


def test_the_switch_links_every_language_without_javascript(client, payment):
    html = client.get(f"/pay/{payment.checkout_token}").text
    nav = re.search(r'<nav class="language-switch".*?</nav>', html, re.S).group(0)
    for code, name in LANGUAGES.items():
        assert f'href="/pay/{payment.checkout_token}?lang={code}"' in nav and name in nav
    assert 'aria-current="true">English<' in nav


@pytest.mark.parametrize("lang", OTHER)
@pytest.mark.parametrize("status", [None, Status.SUCCEEDED, Status.CANCELLED, Status.EXPIRED, Status.FAILED])
def test_every_checkout_page_renders_in_each_language(client, factories, lang, status):
    merchant, _ = factories.merchant(name="Toko Sari")
    payment = factories.payment(merchant, amount=125_000, currency="VND")
    if status is not None:
        if status in (Status.FAILED, Status.SUCCEEDED):
            assert transition(payment, Status.PROCESSING, reason="t", source="t", changes={"gateway": "testcard"})
        assert transition(payment, status, reason="t", source="t")
        db.session.commit()
    headers = {"Accept-Language": lang}
    for path in (f"/pay/{payment.checkout_token}", f"/pay/{payment.checkout_token}/result",
                 f"/pay/{payment.checkout_token}/cancel"):
        r = client.get(path, headers=headers, follow_redirects=True)
        assert r.status_code in (200, 410), path
        html = r.text
        assert html_lang(html) == lang
        assert "Secure checkout by Paysmith" not in html  # the footer, and the rest, are translated
    assert html_lang(client.get("/pay/no-such-token", headers=headers).text) == lang


def test_cancel_asks_first_then_cancels(client, payment):
    from tests.helpers import csrf_token, reload

    html = client.get(f"/pay/{payment.checkout_token}?lang=vi").text
    assert f'href="/pay/{payment.checkout_token}/cancel"' in html and "Hủy và quay lại Toko Sari" in html
    confirm = client.get(f"/pay/{payment.checkout_token}/cancel").text
    assert "Hủy thanh toán này?" in confirm and "Có, hủy thanh toán" in confirm
    assert reload(payment).status == "pending"  # asking changes nothing
    r = client.post(f"/pay/{payment.checkout_token}/cancel", data={"csrf_token": csrf_token(confirm)})
    assert r.status_code == 303 and reload(payment).status == "cancelled"
    # Nothing left to cancel: the confirmation page sends the shopper to the closed page.
    assert client.get(f"/pay/{payment.checkout_token}/cancel").status_code == 303


def test_notice_is_shown_above_the_methods(app, client, payment):
    """The lead's view passes `notice` (the last failed try's reason); the template shows it, translated."""
    from flask import render_template

    from app.checkout.forms import CancelForm, MethodForm
    from app.checkout.outcomes import reason_text
    from app.gateways.base import Reason

    with app.test_request_context(f"/pay/{payment.checkout_token}", headers={"Accept-Language": "id"}):
        form = MethodForm()
        form.method.choices = [("testcard", "Card (test acquirer)")]
        html = render_template("checkout/pay.html", payment=payment, form=form, cancel_form=CancelForm(),
                               error=None, notice=reason_text(Reason.DECLINED), seconds_left=600)
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', html).group(1)
    assert notice == "Pembayaran Anda ditolak. Anda bisa mencoba lagi atau memilih metode lain."
    assert html.index('class="notice"') < html.index('class="methods"')
    assert "Kartu (acquirer uji)" in html


@pytest.mark.parametrize("lang, words", [("vi", "Trình mô phỏng cổng thanh toán"), ("bn", "আসল টাকা লেনদেন হয় না")])
def test_sandbox_pages_follow_the_shoppers_language(http, factories, lang, words):
    from tests.payflow import open_card_page

    merchant, _ = factories.merchant()
    payment = factories.payment(merchant, amount=150_000, currency="VND")
    http.headers["Accept-Language"] = lang
    card_url = open_card_page(http, payment)
    page = http.get(card_url).text
    assert html_lang(page) == lang
    assert {"vi": "Số thẻ", "bn": "কার্ড নম্বর"}[lang] in page
    assert {"vi": "no real money moves", "bn": "no real money moves"}[lang] not in page
    assert words in page or lang == "vi"
