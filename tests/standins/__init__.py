"""Local stand-ins for the providers the connectors talk to, on 127.0.0.1, for connector and engine tests.

Each is an async context manager that starts a real server on a free port, records what it receives, can be
told to fail (`fail_next`), and gives the OMNICANAL_* variables that route its connector to it (`env()`).
"""

from .fcm import FcmStandIn
from .http import Failure, HttpStandIn, Received, unused_url
from .messages import connector_context, outbound
from .messenger import MessengerStandIn
from .smtp import Delivered, SmtpStandIn
from .twilio import TwilioStandIn
from .webhook import WebhookReceiver

__all__ = [
    "Delivered",
    "Failure",
    "FcmStandIn",
    "HttpStandIn",
    "MessengerStandIn",
    "Received",
    "SmtpStandIn",
    "TwilioStandIn",
    "WebhookReceiver",
    "connector_context",
    "outbound",
    "unused_url",
]
