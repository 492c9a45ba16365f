"""Rocket (Dutch-Bangla Bank mobile banking), offered as its own method and carried through SSLCommerz.

Rocket publishes no merchant API of its own; merchants take it through an aggregator. We open an SSLCommerz
session with `multi_card_name=dbblmobilebanking`, so the shopper who picks "Rocket" on our checkout lands on
the Rocket channel directly. Everything else (IPN, validation, query, refunds) is SSLCommerz's protocol,
under our own callback routes /callbacks/rocket/… and the merchant's own `rocket` gateway account.
"""

from app.gateways.sslcommerz import SSLCommerzGateway


class RocketGateway(SSLCommerzGateway):
    code = "rocket"
    name = "Rocket"
    currencies = frozenset({"BDT"})  # a Bangladeshi wallet: taka only
    channel = "dbblmobilebanking"
