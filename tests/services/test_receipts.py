"""Receipts: written with the success or refund event, sent by the worker through a real SMTP server on
loopback (aiosmtpd), in the shopper's language, once."""

import email
import email.policy
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.extensions import db
from app.jobs.schedule import run_periodic
from app.models import Receipt
from app.services import receipts, refunds
from app.state_machine import Status, transition
from tests.helpers import reload
from tests.payflow import pay


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        self.refuse = False

    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return "451 try again later"
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.rcpt_tos, message))
        return "250 OK"


@pytest.fixture
def smtp(app, monkeypatch):
    inbox = Inbox()
    with socket.socket() as probe:  # a free loopback port (aiosmtpd's readiness check cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", port)
    monkeypatch.setitem(app.config, "MAIL_USE_TLS", False)
    monkeypatch.setitem(app.config, "MAIL_FROM", "Paysmith Receipts <receipts@paysmith.test>")
    yield inbox
    controller.stop()


def text_of(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message):
    return message.get_body(preferencelist=("html",)).get_content()


def succeed(payment):
    assert transition(payment, Status.PROCESSING, reason="test", source="test", changes={"gateway": "testcard"})
    assert transition(payment, Status.SUCCEEDED, reason="test", source="test")
    db.session.commit()


def test_a_vietnamese_receipt_after_success(factories, smtp, run_jobs):
    merchant, _ = factories.merchant(name="Cà phê Sài Gòn")
    payment = factories.payment(merchant, amount=125_000, currency="VND", reference="DH-1001",
                                customer={"email": "Khach@Example.test"})
    succeed(payment)
    receipt = db.session.scalars(select(Receipt)).one()
    assert (receipt.kind, receipt.locale, receipt.email, receipt.status) == \
        ("payment", "vi", "khach@example.test", "pending")
    run_jobs()
    [(rcpt, message)] = smtp.messages
    assert rcpt == ["khach@example.test"]
    assert message["Subject"] == "Biên lai của bạn từ Cà phê Sài Gòn"
    assert message["Content-Language"] == "vi"
    assert message["Message-ID"] == f"<receipt-{receipt.id}@paysmith.test>"
    body = text_of(message)
    assert "125.000\xa0₫" in body and "DH-1001" in body and "Cảm ơn bạn đã thanh toán cho Cà phê Sài Gòn." in body
    assert "Phương thức thanh toán: Thẻ (ngân hàng thử nghiệm)" in body
    assert 'lang="vi"' in html_of(message) and "125.000\xa0₫" in html_of(message)
    assert reload(receipt).status == "sent" and receipt.sent_at is not None and receipt.attempts == 1
    run_jobs()
    run_periodic("receipts")
    run_jobs()
    assert len(smtp.messages) == 1  # sent once: the sweep finds nothing due


def test_no_email_no_receipt(factories, smtp, run_jobs):
    merchant, _ = factories.merchant()
    succeed(factories.payment(merchant))
    run_jobs()
    assert db.session.scalars(select(Receipt)).all() == [] and smtp.messages == []


def test_receipt_and_refund_receipt_in_english_with_lakh_grouping(factories, http, smtp, run_jobs):
    """A BDT payment whose shopper read English (the payment's recorded locale, where the column exists, or a
    test override of the merchant default): en_IN-style lakhs."""
    merchant, _ = factories.merchant(name="Dhaka Books")
    payment = factories.payment(merchant, amount=15_000_000, currency="BDT", reference="INV-7",
                                customer={"email": "reader@example.test"})
    original = receipts.shopper_locale
    receipts.shopper_locale = lambda p: "en"
    try:
        pay(http, payment)
        run_jobs()
        refund = refunds.request_refund(payment, 2_500_050, "one book missing", source="test")
        run_jobs()
    finally:
        receipts.shopper_locale = original
    assert reload(refund).status == "succeeded"
    assert [m["Subject"] for _, m in smtp.messages] == ["Your receipt from Dhaka Books",
                                                       "Your refund from Dhaka Books"]
    paid_text, refund_text = (text_of(m) for _, m in smtp.messages)
    assert "Amount paid: ৳1,50,000.00" in paid_text and "Order: INV-7" in paid_text
    assert "Dhaka Books has refunded ৳25,000.50 to you." in refund_text
    assert "Amount refunded: ৳25,000.50" in refund_text
    kinds = [(r.kind, r.refund_id) for r in db.session.scalars(select(Receipt).order_by(Receipt.id))]
    assert kinds == [("payment", None), ("refund", refund.id)]


def test_bengali_default_for_bdt(factories, smtp, run_jobs):
    merchant, _ = factories.merchant(name="Dhaka Books")
    payment = factories.payment(merchant, amount=15_000_000, currency="BDT", customer={"email": "a@example.test"})
    succeed(payment)
    run_jobs()
    [(_, message)] = smtp.messages
    assert message["Subject"] == "Dhaka Books থেকে আপনার রসিদ"
    assert "1,50,000.00৳" in text_of(message)


def test_a_refused_send_is_tried_again_by_the_sweep(factories, smtp, run_jobs, app):
    merchant, _ = factories.merchant(name="Toko Sari")
    payment = factories.payment(merchant, amount=99_000, currency="IDR", customer={"email": "b@example.test"})
    smtp.refuse = True
    succeed(payment)
    run_jobs()
    receipt = db.session.scalars(select(Receipt)).one()
    assert receipt.status == "pending" and receipt.attempts == 1 and "451" in receipt.last_error
    smtp.refuse = False
    run_periodic("receipts")  # not due yet: nothing is sent
    run_jobs()
    assert smtp.messages == []
    receipt.next_attempt_at = receipt.created_at  # the retry delay has passed
    db.session.commit()
    run_periodic("receipts")
    run_jobs()
    [(_, message)] = smtp.messages
    assert message["Subject"] == "Tanda terima Anda dari Toko Sari" and "Rp\xa099.000" in text_of(message)
    assert reload(receipt).status == "sent" and receipt.attempts == 2


def test_gives_up_after_the_last_attempt(factories, smtp, run_jobs, app, monkeypatch):
    monkeypatch.setitem(app.config, "RECEIPT_MAX_ATTEMPTS", 1)
    merchant, _ = factories.merchant()
    smtp.refuse = True
    succeed(factories.payment(merchant, customer={"email": "c@example.test"}))
    run_jobs()
    assert db.session.scalars(select(Receipt)).one().status == "failed"


def test_file_backend_writes_an_eml(factories, run_jobs, app):
    import os

    merchant, _ = factories.merchant(name="Kathmandu Tea")
    payment = factories.payment(merchant, amount=150_000, currency="NPR", customer={"email": "d@example.test"})
    succeed(payment)
    run_jobs()
    receipt = db.session.scalars(select(Receipt)).one()
    path = os.path.join(app.instance_path, "mail", f"receipt-{receipt.id}_paysmith.test.eml")
    with open(path, "rb") as fh:
        message = email.message_from_bytes(fh.read(), policy=email.policy.default)
    assert message["Subject"] == "Kathmandu Tea बाट तपाईंको रसिद"
    assert "नेरू\xa01,500.00" in text_of(message)
    os.remove(path)
