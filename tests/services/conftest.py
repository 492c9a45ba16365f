import pytest

from tests.receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked(factories, receiver):
    """A merchant whose webhook URL is the receiver: (merchant, api_key)."""
    merchant, key = factories.merchant(webhook_url=receiver.url)
    receiver.secret = merchant.webhook_secret
    return merchant, key
