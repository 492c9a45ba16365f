"""The shopper's language reaches the gateways whose protocol has a field for it (PaymentInfo.locale)."""

from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.gateways.base import GatewayContext, PaymentInfo
from app.gateways.vnpay import VNPayGateway

NOW = datetime(2026, 12, 1, 8, 0)
INFO = PaymentInfo(id="pay_1", amount=150_000, currency="VND", reference="1001", description=None, items=[],
                   customer={}, created_at=NOW, expires_at=NOW + timedelta(minutes=15), checkout_token="t",
                   order_id="att_1")
CTX = GatewayContext(code="vnpay", credentials={"tmn_code": "TMN", "hash_secret": "s"}, mode="sandbox",
                     base_url="http://127.0.0.1:9", public_base_url="http://127.0.0.1:5000")


@pytest.mark.parametrize("locale, vnp", [("vi", "vn"), ("en", "en"), ("bn", "en")])
def test_vnpay_locale(locale, vnp):
    url = VNPayGateway().start(replace(INFO, locale=locale), CTX).action.url
    assert parse_qs(urlsplit(url).query)["vnp_Locale"] == [vnp]
