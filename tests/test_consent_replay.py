"""A replayed provider webhook cannot change a customer's consent: Twilio's signature carries no time, so a
captured START could be sent again after a later STOP. A reply changes the profile once per MessageSid, and
consent decisions apply in the order they were taken."""

from __future__ import annotations

from conftest import StartApi
from standins import TwilioStandIn
from test_channels_end_to_end import PHONE, twilio_post


async def test_a_replayed_start_after_a_stop_does_not_opt_back_in(start_api: StartApi,
                                                                  twilio: TwilioStandIn) -> None:
    api = await start_api(channels={"sms": "twilio_sms"}, opt_in_channels=["sms"])
    await api.put_customer("c5", {"addresses": {"sms": PHONE}})
    start = {"From": PHONE, "To": "+1", "Body": "START", "MessageSid": "SM-start"}
    stop = {"From": PHONE, "To": "+1", "Body": "STOP", "MessageSid": "SM-stop"}
    assert await twilio_post(api, "/webhooks/twilio/inbound", start, twilio.auth_token) == 200
    granted = (await api.request("GET", "/v1/customers/c5", 200))["consents"]["sms"]["marketing"]
    assert granted["granted"] is True and granted["source"] == "sms_keyword"
    assert await twilio_post(api, "/webhooks/twilio/inbound", stop, twilio.auth_token) == 200
    denied = (await api.request("GET", "/v1/customers/c5", 200))["consents"]["sms"]
    for replay in range(2):  # the same signed START, sent again (twice)
        assert await twilio_post(api, "/webhooks/twilio/inbound", start, twilio.auth_token) == 200, replay
    assert (await api.request("GET", "/v1/customers/c5", 200))["consents"]["sms"] == denied
    assert denied["marketing"]["granted"] is False and denied["transactional"]["granted"] is False
    await api.settled()
    received = [e["properties"]["keyword"] for e in await api.timeline("c5")
                if e["kind"] == "event" and e["name"] == "message.received"]
    assert received == ["START", "STOP"]  # each reply once on the timeline too
    restart = {**start, "MessageSid": "SM-restart"}  # a new START, sent by the customer: opts back in
    assert await twilio_post(api, "/webhooks/twilio/inbound", restart, twilio.auth_token) == 200
    assert (await api.request("GET", "/v1/customers/c5", 200))["consents"]["sms"]["marketing"]["granted"] is True
