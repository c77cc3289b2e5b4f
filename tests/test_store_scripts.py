"""Every Lua script of store/lua/ against real Redis, through the store call that runs it: its contract, and that
all the keys it is given share one slot (so it runs unchanged on Redis Cluster)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any

import pytest
from redis.crc import key_slot

from omnicanal.codec import dumps
from omnicanal.errors import StaleWork
from omnicanal.policy import consent
from omnicanal.policy.caps import Cap
from omnicanal.store.backfills import SegmentBackfills
from omnicanal.store.broadcasts import SCHEDULED, Broadcast, BroadcastStore
from omnicanal.store.commit import Commit
from omnicanal.store.connection import open_redis
from omnicanal.store.coupons import Coupons
from omnicanal.store.customers import CustomerStore
from omnicanal.store.inbox import InboxStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.leases import LeaseStore
from omnicanal.store.outbox import OutboxStore
from omnicanal.store.schema import INBOX_KEPT, WorkItem, decode_work, timer_member
from omnicanal.store.scripts import Command, load, script_names
from omnicanal.store.sends import Claim, SendLog
from omnicanal.store.transport import DirectRedis, PipelinedRedis, Transport
from omnicanal.store.work import WorkQueue

KEYS = Keyspace("t", 4)
SCRIPTS = {load(name).sha: name for name in script_names()}


class Recording(Transport):
    """A transport noting the keys of every script it sends."""

    sent: list[tuple[str, list[str]]]

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        for command in commands:
            if command[0] == "EVALSHA":
                self.sent.append((SCRIPTS[command[1]], [str(key) for key in command[3:3 + command[2]]]))
        return await super().send(commands)  # the concrete transport's (the classes below)

    def one_slot(self, script: str) -> bool:
        """Whether `script` was sent, every call with keys of one slot (so it runs on a Cluster)."""
        calls = [{key_slot(key.encode()) for key in keys} for name, keys in self.sent if name == script]
        return bool(calls) and all(len(slots) == 1 for slots in calls)


class RecordingDirect(Recording, DirectRedis):
    """The plain redis:// transport."""


class RecordingEmbedded(Recording, PipelinedRedis):
    """The embedded store's: the scripts must behave the same on fakeredis' Lua."""


@pytest.fixture(params=["redis", "embedded"])
async def transport(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Recording]:
    recording = RecordingDirect(open_redis(redis_url)) if request.param == "redis" else \
        RecordingEmbedded(open_redis(None))
    recording.sent = []
    yield recording
    await recording.aclose()


def _record(*statuses: str, **fields: Any) -> dict[str, Any]:
    return {"status": statuses[-1], "history": [{"status": s, "at": 100.0 + n} for n, s in enumerate(statuses)],
            "journey": "j", "step": "s", "channel": "sms", **fields}


def test_every_script_names_its_keys_first_and_has_a_contract_test_here() -> None:
    tests = {name for name in globals() if name.startswith("test_lua_")}
    for name in script_names():
        assert any(f"lua_{name}_" in test for test in tests), f"no test of lua/{name}.lua"
        source = (resources.files("omnicanal.store") / "lua" / f"{name}.lua").read_text()
        code = [line for line in source.splitlines() if line.strip() and not line.startswith("--")]
        named = [line for line in code if "KEYS" in line]
        assert code[:len(named)] == named, f"lua/{name}.lua: name its KEYS before anything else"
        assert all(re.fullmatch(r"local \w+_key = KEYS\[\d+\](  --.*)?", line) for line in named), named


async def test_lua_snapshot_splits_the_profile_and_finds_each_instances_event(transport: Recording) -> None:
    store = CustomerStore(transport, KEYS)
    client = transport.client
    k = KEYS.customer("c1")
    event_entry = {"kind": "event", "at": "t", "name": "cart", "event_id": "e1", "properties": {"items": []},
                   "occurred_at": "2026-01-01T00:00:00Z"}
    await client.rpush(k.timeline, dumps({"kind": "other"}), dumps(event_entry))
    await client.hset(k.profile, mapping={
        "locale": "fr", "addresses": dumps({"sms": "+33612345678"}), "applied_entry": "5-1", "timeline_trimmed": "2",
        "i:kept": dumps({"e": 3, "j": "cart", "v": "1", "s": 1.5, "p": 2, "n": 3, "x": {},
                         "w": {"k": "wait", "t": "3", "u": 9.5}}),
        "i:carried": dumps({"j": "welcome", "v": "2", "s": 1.0, "p": 0, "n": 0, "x": {"a": 1},
                            "ev": {"id": "e0", "name": "signed_up"}}),
    })
    await client.hset(k.attrs, "tier", dumps("gold"))
    await client.hset(k.entries, "cart", "100.5")
    await client.zadd(k.seen, {"e1": 1.0, "e2": 2.0})

    snap = await store.snapshot("c1", ["e1", "e3"])
    assert snap.profile == {"locale": "fr", "addresses": {"sms": "+33612345678"}}
    assert (snap.applied, snap.timeline_end, snap.seen) == ("5-1", 4, {"e1"})
    assert (snap.attributes, snap.entries) == ({"tier": "gold"}, {"cart": 100.5})
    assert snap.instances["kept"] == {
        "event_at": 3, "journey": "cart", "version": "1", "started_at": 1.5, "position": 2, "seq": 3, "vars": {},
        "waiting": {"kind": "wait", "token": "3", "until": 9.5}, "id": "kept", "customer_id": "c1",
        "event": {"id": "e1", "name": "cart", "customer_id": "c1", "properties": {"items": []},
                  "timestamp": "2026-01-01T00:00:00Z"}}
    assert snap.instances["carried"]["event"] == {"id": "e0", "name": "signed_up"}

    # A record the snapshot cannot read stops its customer only: another stored form, JSON that is not.
    await client.hset(KEYS.customer("c2").profile, "i:x", dumps({"journey": "cart"}))
    await client.hset(KEYS.customer("c3").profile, "i:x", "{not json")
    found = await store.snapshots({"c1": [], "c2": [], "c3": []})
    assert not isinstance(found["c1"], Exception)
    assert isinstance(found["c2"], ValueError) and "journey" in str(found["c2"])
    assert isinstance(found["c3"], ValueError)
    assert transport.one_slot("snapshot")


async def test_lua_commit_writes_every_section_and_keeps_receipts(transport: Recording) -> None:
    store = CustomerStore(transport, KEYS, timeline_limit=3)
    client = transport.client
    k = KEYS.customer("c1")
    first = Commit(seen={"old": 10.0, "e1": 50.0}, timeline=[{"kind": "event", "n": n} for n in range(2)],
                   instances={"i1": {"journey": "cart"}, "i2": {"journey": "welcome"}}, entries={"cart": 5.0},
                   attributes={"tier": "gold", "vip": True}, messages={"m1": _record("sending", "sent")},
                   applied="7-0")
    async with store.writes() as writes:
        await store.commit(writes, "c1", first, now=1000.0, seen_since=0.0, new=True)
    assert await client.hget(k.profile, "created_at") == "1000.0"
    assert await client.sismember(KEYS.customers, "c1")
    await store.record_status("c1", "m1", "delivered", 200.0)

    second = Commit(seen={"e2": 60.0}, timeline=[{"kind": "event", "n": n} for n in range(2, 4)],
                    ended={"i2"}, attributes={"vip": None},
                    messages={"m1": _record("sending", "sent", fallback={"done": True, "channels": []})},
                    read="7-0")
    async with store.writes() as writes:
        await store.commit(writes, "c1", second, now=2000.0, seen_since=20.0, new=False)
    profile = await client.hgetall(k.profile)
    assert profile == {"created_at": "1000.0", "applied_entry": "7-0", "timeline_trimmed": "1",
                       "i:i1": '{"j":"cart"}'}
    assert [n for n in await client.zrange(k.seen, 0, -1)] == ["e1", "e2"]  # scored before seen_since: gone
    assert await store.timeline("c1") == [{"kind": "event", "n": n} for n in range(1, 4)]
    assert await client.hgetall(k.attrs) == {"tier": '"gold"'}
    assert await client.hgetall(k.entries) == {"cart": "5.0"}
    message = await store.message("c1", "m1")
    assert message is not None and message["fallback"] == {"done": True, "channels": []}
    assert [h["status"] for h in message["history"]] == ["sending", "sent", "delivered"]
    assert message["status"] == "delivered"
    assert transport.one_slot("commit")


async def test_lua_commit_refuses_a_state_read_before_another_workers_commit(transport: Recording) -> None:
    """The fence against a worker that stalled past its partition's lease: its commit was computed from a snapshot
    that read applied entry 7-0, another worker has committed 9-0 since; the stale commit writes nothing (an ended
    instance would run again, timeline entries come twice) and says so (StaleWork); the other customers' commits
    of the same batch are written."""
    store = CustomerStore(transport, KEYS)
    client = transport.client
    async with store.writes() as writes:
        await store.commit(writes, "c1", Commit(instances={"i1": {"journey": "cart"}}, applied="7-0"), now=1000.0,
                           seen_since=0.0, new=True)
    async with store.writes() as writes:  # the new owner: the instance ended
        await store.commit(writes, "c1", Commit(ended={"i1"}, timeline=[{"kind": "journey"}], applied="9-0",
                                                read="7-0"), now=1001.0, seen_since=0.0, new=False)
    with pytest.raises(StaleWork, match="9-0"):
        async with store.writes() as writes:  # the stalled one, back
            await store.commit(writes, "c2", Commit(timeline=[{"kind": "event"}], applied="3-0"), now=1002.0,
                               seen_since=0.0, new=True)
            await store.commit(writes, "c1", Commit(instances={"i1": {"journey": "cart"}, "i2": {"journey": "cart"}},
                                                    timeline=[{"kind": "message"}], applied="8-0", read="7-0"),
                               now=1002.0, seen_since=0.0, new=False)
    profile = await client.hgetall(KEYS.customer("c1").profile)
    assert profile["applied_entry"] == "9-0" and not any(name.startswith("i:") for name in profile)
    assert await store.timeline("c1") == [{"kind": "journey"}]
    assert await store.timeline("c2") == [{"kind": "event"}]


async def test_lua_claim_once_and_within_caps(transport: Recording) -> None:
    sends = SendLog(transport, KEYS)
    store = CustomerStore(transport, KEYS)
    caps = (Cap(1, 3600.0, "channel"),)
    assert await sends.claim("c1", "m1", _record("sending"), "sms", "j", 1000.0, caps) == Claim()
    again = await sends.claim("c1", "m1", _record("sending"), "sms", "j", 1001.0, caps)
    assert again.previous == _record("sending") and again.cap is None  # a replay: never sent twice
    capped = await sends.claim("c1", "m2", _record("sending"), "sms", "j", 1002.0, caps)
    assert capped.cap == caps[0] and capped.previous is None
    record = await store.message("c1", "m2")
    assert record is not None and [h["status"] for h in record["history"]] == ["sending", "capped"]
    assert record["status"] == "capped"
    other = await sends.claim("c1", "m3", _record("sending"), "email", "j", 1003.0, caps)  # another channel
    assert other.cap is None and other.previous is None
    assert await transport.client.zcard(KEYS.customer("c1").sends) == 2
    await sends.forget("c1", "m3", "email", "j")
    assert await transport.client.zcard(KEYS.customer("c1").sends) == 1
    assert transport.one_slot("claim")


async def test_lua_claim_lists_what_work_claimed_until_its_commit_settles_it(transport: Recording) -> None:
    """A worker that dies between a claim and its commit leaves the claim listed: the snapshot its replay reads
    holds it (so the replay sends nowhere else), and the commit that settles it takes it off."""
    sends = SendLog(transport, KEYS)
    store = CustomerStore(transport, KEYS)
    caps = (Cap(1, 3600.0, "customer"),)
    for message_id in ("m1", "m2", "m3"):
        await sends.claim("c1", message_id, _record("sending"), "sms", "j", 1000.0, caps)
    await sends.claim("c1", "m1", _record("sending"), "sms", "j", 1001.0, caps)  # a replay lists nothing new
    assert (await store.snapshot("c1", [])).claimed == {"m1"}  # m2 and m3 capped: not sent, nothing to replay
    await sends.claim("c1", "m4", _record("sending"), "email", "j", 1002.0, ())
    async with store.writes() as writes:
        await store.commit(writes, "c1", Commit(settled={"m1", "unknown"}), now=1003.0, seen_since=0.0, new=False)
    assert (await store.snapshot("c1", [])).claimed == {"m4"}
    assert await transport.client.smembers(KEYS.customer("c1").claims) == {"m4"}


async def test_lua_inbox_append_keeps_a_message_once_and_only_the_newest(transport: Recording) -> None:
    inbox = InboxStore(transport.client, KEYS)
    for n in range(INBOX_KEPT + 2):
        assert await inbox.append("c1", {"id": f"m{n}", "body": str(n)}, 1_000 + n)
    assert not await inbox.append("c1", {"id": f"m{INBOX_KEPT + 1}", "body": "again"}, 5_000)  # a replay: kept as is
    await inbox.mark("c1", ["m0", "m1", "m2"], "read", "2027-01-01T00:00:00.000Z")  # m0, m1: trimmed already
    kept = await inbox.messages("c1")
    assert len(kept) == INBOX_KEPT and kept[0] == (1_000 + INBOX_KEPT + 1, {
        "id": f"m{INBOX_KEPT + 1}", "body": str(INBOX_KEPT + 1), "read_at": None, "archived_at": None})
    assert kept[-1][1]["id"] == "m2" and kept[-1][1]["read_at"] == "2027-01-01T00:00:00.000Z"
    assert await inbox.append("c1", {"id": "new", "body": "x"}, 9_000)  # m2 goes, with its mark
    k = KEYS.customer("c1")
    assert await transport.client.hexists(k.inbox, "m2|r") is False
    assert [score for score, _ in (await inbox.messages("c1"))[:2]] == [9_000, 1_000 + INBOX_KEPT + 1]
    assert await inbox.version("c1") == INBOX_KEPT + 4  # each message in, and the one mark that changed something


async def test_lua_inbox_mark_marks_each_message_once(transport: Recording) -> None:
    inbox = InboxStore(transport.client, KEYS)
    await inbox.append("c1", {"id": "a"}, 1)
    await inbox.append("c1", {"id": "b"}, 2)
    assert await inbox.mark("c1", ["a", "ghost"], "archived", "t1") == ["a"]
    assert await inbox.mark("c1", ["a", "b"], "archived", "t2") == ["b"]
    assert [(m["id"], m["archived_at"], m["read_at"]) for _, m in await inbox.messages("c1")] == [
        ("b", "t2", None), ("a", "t1", None)]
    assert await inbox.mark("c1", [], "read", "t3") == []


async def test_lua_fire_due_moves_due_timers_into_the_stream_once(transport: Recording) -> None:
    queue = WorkQueue(transport, KEYS)
    await queue.ensure_groups()
    async with transport.batch() as writes:
        queue.schedule(writes.before, [("c1", "i1", "1", 10.0), ("c1", "i2", "2", 20.0), ("c1", "i3", "3", 30.0)])
    assert await queue.fire_due(range(4), now=20.0, limit=1) == [10.0]  # the due times of those it moved
    assert await queue.fire_due(range(4), now=20.0) == [20.0]
    assert await queue.fire_due(range(4), now=20.0) == []
    partition = queue.partition("c1")
    entries = await transport.client.xrange(partition.work)
    assert [decode_work(partition.number, entry_id, fields) for entry_id, fields in entries] == [
        WorkItem(partition.number, entry_id, "timer", "c1", instance_id=iid, token=token)
        for (entry_id, _), (iid, token) in zip(entries, [("i1", "1"), ("i2", "2")], strict=True)]
    assert await transport.client.zrange(partition.timers, 0, -1) == [timer_member("c1", "i3", "3")]
    assert transport.one_slot("fire_due")


async def test_lua_renew_lease_and_lua_release_lease_only_for_its_holder(transport: Recording) -> None:
    leases = LeaseStore(transport, KEYS)
    assert await leases.acquire(0, "w1", 1000)
    assert not await leases.acquire(0, "w2", 1000)
    assert not await leases.renew(0, "w2", 60_000)
    assert await leases.renew(0, "w1", 60_000)
    assert await transport.client.pttl(KEYS.partition(0).lease) > 1000
    await leases.release(0, "w2")
    assert await transport.client.get(KEYS.partition(0).lease) == "w1"
    await leases.release(0, "w1")
    assert not await transport.client.exists(KEYS.partition(0).lease)
    assert transport.one_slot("renew_lease") and transport.one_slot("release_lease")


async def test_lua_create_broadcast_creates_once_and_lists_it(transport: Recording) -> None:
    store = BroadcastStore(transport, KEYS)
    first = Broadcast(id="b1", journey="sale", audience={"everyone": True}, status=SCHEDULED, at=10.0,
                      created_at=5.0, data={"season": "hiver"}, origin="schedule")
    assert await store.create(first)
    assert not await store.create(Broadcast(id="b1", journey="other", audience={"where": "x"}, status=SCHEDULED,
                                            at=0.0, created_at=6.0))  # an occurrence reached twice: once
    stored = await store.get("b1")
    assert stored is not None and (stored.journey, stored.audience, stored.data, stored.at) == \
        ("sale", {"everyone": True}, {"season": "hiver"}, 10.0)
    assert await store.active() == ["b1"]
    assert await transport.client.zscore(KEYS.broadcasts, "b1") == 5.0
    assert transport.one_slot("create_broadcast")


async def test_lua_arm_backfill_and_lua_advance_backfill_once_per_definition_and_never_for_a_superseded_one(
        transport: Recording) -> None:
    store = SegmentBackfills(transport, KEYS)
    assert await store.arm({"gold": "f1", "vip": "v1"}, 10.0) == ["gold", "vip"]
    assert await store.arm({"gold": "f1", "vip": "v1"}, 11.0) == []  # another process loading the same files
    first = await store.get("gold")
    assert first is not None and (first.fingerprint, first.state, first.cursor, first.considered, first.total,
                                  first.armed_at) == ("f1", "walking", "0", 0, None, 10.0)
    assert await store.advance(first, "0", 0, 12.0, total=3)  # begins: how many customers
    assert await store.advance(first, "17", 2, 12.5, total=99)  # the total is the first one said
    walked = await store.get("gold")
    assert walked is not None and (walked.cursor, walked.considered, walked.total, walked.walking) == ("17", 2, 3, True)
    assert await store.arm({"gold": "f2"}, 13.0) == ["gold"]  # changed; vip no longer defined: dropped
    assert await store.get("vip") is None and await transport.client.smembers(KEYS.segment_backfills) == {"gold"}
    assert not await store.advance(walked, "0", 1, 14.0, finished=True)  # the old walk records nothing
    second = await store.get("gold")
    assert second is not None and (second.fingerprint, second.cursor, second.considered) == ("f2", "0", 0)
    assert await store.advance(second, "0", 5, 15.0, finished=True, total=5)
    done = await store.get("gold")
    assert done is not None and done.to_json() == {"state": "done", "considered": 5, "total": 5, "armed_at": 13.0,
                                                   "walked_at": 15.0}
    assert transport.one_slot("arm_backfill") and transport.one_slot("advance_backfill")


async def test_lua_upsert_profile_merges_addresses_and_consents_in_redis(transport: Recording) -> None:
    store = CustomerStore(transport, KEYS)
    decision = {"granted": True, "source": "api", "at": "t1"}
    await store.upsert_profile("c1", {"locale": "fr", "channel_preference": ["sms"],
                                      "addresses": {"sms": "+1", "push": ["a", "b"], "email": "x@example.com"},
                                      "consents": {"sms": {"marketing": decision}}},
                               {"tier": "gold", "n": 1}, now=1000.0)
    await store.upsert_profile("c1", {"locale": None, "addresses": {"sms": None, "push": ["c"], "email": "",
                                                                    "whatsapp": "+2"},
                                      "consents": {"sms": {"transactional": {**decision, "granted": False}}}},
                               {"n": None, "zero": 0}, now=2000.0)
    profile, attributes, _ = await store.profile("c1")
    assert profile == {"created_at": "1000.0", "known_at": "1000.0", "updated_at": "2000.0",
                       "channel_preference": ["sms"], "addresses": {"push": ["c"], "whatsapp": "+2"},
                       "consents": {"sms": {"marketing": decision,
                                            "transactional": {**decision, "granted": False}}}}
    assert attributes == {"tier": "gold", "zero": 0}
    assert await transport.client.sismember(KEYS.customers, "c1")
    await store.upsert_profile("c1", {"addresses": {"push": [], "whatsapp": None}, "consents": {"push": {}}}, {},
                               now=3000.0)
    profile = (await store.profile("c1"))[0]
    assert profile["addresses"] == {} and "push" not in profile["consents"]
    assert transport.one_slot("upsert_profile")


@pytest.mark.parametrize(("current", "update"), [
    ({}, {"sms": {"marketing": {"granted": True, "source": "api", "at": "a"}}}),
    ({"sms": {"marketing": {"granted": True, "source": "api", "at": "a"}}},
     {"sms": {"marketing": {"granted": False, "source": "sms_keyword", "at": "b"}},
      "email": {"transactional": {"granted": True, "source": "api", "at": "b"}}}),
    ({"sms": {"marketing": {"granted": False, "source": "api", "at": "a"},
              "transactional": {"granted": True, "source": "api", "at": "a"}}},
     {"sms": {"transactional": {"granted": False, "source": "api", "at": "b"}}}),
    ({"sms": {"marketing": {"granted": False, "source": "sms_keyword", "at": "b"}}},  # an older decision, late
     {"sms": {"marketing": {"granted": True, "source": "sms_keyword", "at": "a"},
              "transactional": {"granted": True, "source": "sms_keyword", "at": "a"}}}),
])
async def test_lua_upsert_profile_merges_consents_as_policy_consent_merge_does(
        transport: Recording, current: dict[str, Any], update: dict[str, Any]) -> None:
    store = CustomerStore(transport, KEYS)
    await store.upsert_profile("c1", {"consents": current}, {}, now=1.0)
    await store.upsert_profile("c1", {"consents": update}, {}, now=2.0)
    assert (await store.profile("c1"))[0]["consents"] == consent.merge(current, update)


async def test_lua_remove_address_forgets_only_that_address(transport: Recording) -> None:
    store = CustomerStore(transport, KEYS)
    await store.remove_address("c1", "sms", "+1")  # no addresses at all: nothing happens
    assert not await transport.client.exists(KEYS.customer("c1").profile)
    await store.upsert_profile("c1", {"addresses": {"push": ["a", "b"], "sms": "+1"}}, {}, now=1.0)
    await store.remove_address("c1", "push", "a")
    await store.remove_address("c1", "sms", "+2")  # not theirs: kept
    assert (await store.profile("c1"))[0]["addresses"] == {"push": ["b"], "sms": "+1"}
    await store.remove_address("c1", "push", "b")
    await store.remove_address("c1", "sms", "+1")
    assert (await store.profile("c1"))[0]["addresses"] == {}
    assert transport.one_slot("remove_address")


async def test_lua_record_status_appends_a_status_once_and_never_rewrites_the_record(transport: Recording) -> None:
    store = CustomerStore(transport, KEYS)
    assert await store.record_status("c1", "nope", "delivered", 1.0) is None
    # customer data cjson would change if the script re-encoded it: empty lists, big integers, precise floats
    fallback = {"event": {"properties": {"items": [], "id": 12345678901234567890, "at": 1718000000.123456}}}
    await store.save_message("c1", "m1", _record("sending", "queued", fallback=fallback))
    stored = await transport.client.hget(KEYS.customer("c1").messages, "m1")
    record = await store.record_status("c1", "m1", "delivered", 300.0, error_code="30003")
    assert record is not None and record["status"] == "delivered" and record["fallback"] == fallback
    assert record["history"][-1] == {"status": "delivered", "at": 300.0, "error_code": "30003"}
    again = await store.record_status("c1", "m1", "delivered", 400.0)  # Twilio retried the callback
    assert again == record
    await store.record_status("c1", "m1", "read", 500.0)
    assert await transport.client.hget(KEYS.customer("c1").messages, "m1") == stored
    message = await store.message("c1", "m1")
    assert message is not None and [h["status"] for h in message["history"]] == ["sending", "queued", "delivered",
                                                                                    "read"]
    assert transport.one_slot("record_status")


async def test_lua_save_message_replaces_the_record_and_merges_the_history(transport: Recording) -> None:
    store = CustomerStore(transport, KEYS)
    await store.save_sent_message("c1", "m1", _record("sending", "queued"), provider_id="SM1")
    assert await store.message_of_provider_id("SM1") == ("c1", "m1")
    read = await store.message("c1", "m1")  # what the worker holds...
    await store.record_status("c1", "m1", "delivered", 300.0)  # ...while a receipt comes
    assert read is not None
    read["fallback"] = {"done": True}
    await store.save_message("c1", "m1", read)
    message = await store.message("c1", "m1")
    assert message == {**read, "status": "delivered", "history": [*read["history"],
                                                                  {"status": "delivered", "at": 300.0}]}
    await store.save_message("c1", "m1", _record("sending", "queued", "unknown"))
    message = await store.message("c1", "m1")
    assert message is not None and "fallback" not in message
    assert [h["status"] for h in message["history"]] == ["sending", "queued", "delivered", "unknown"]
    assert transport.one_slot("save_message")


async def test_lua_redeem_coupon_once_and_only_while_valid(transport: Recording) -> None:
    coupons = Coupons(transport, KEYS)
    async with transport.batch() as writes:
        coupons.issue(writes.before, "c1", [
            {"code": "OK1", "message_id": "m1", "journey": "j", "step": "s", "channel": "email", "expires": 200.0},
            {"code": "OLD", "message_id": "m2", "journey": "j", "step": "s", "channel": "sms", "expires": 50.0},
        ], 100.0)
    first = await coupons.redeem([("e1", "OK1"), ("e2", "OLD"), ("e3", "NOPE"), ("e4", 42)], 100.0)
    assert first["e1"] == {"status": "redeemed", "customer": "c1", "message_id": "m1", "journey": "j", "step": "s",
                           "channel": "email", "expires": "200.0"}
    assert [first[e]["status"] for e in ("e2", "e3", "e4")] == ["expired", "unknown", "unknown"]
    again = await coupons.redeem([("e1", "OK1"), ("e5", "OK1")], 101.0)  # a replay passes; another use does not
    assert (again["e1"]["status"], again["e5"]["status"]) == ("redeemed", "used")
    assert transport.one_slot("redeem_coupon")


async def test_lua_outbox_page_numbers_records_for_good_across_trims(transport: Recording) -> None:
    outbox = OutboxStore(transport.client, KEYS)
    for n in range(5):
        await outbox.append({"n": n, "customer_id": "a" if n % 2 else "b"})
    records, last = await outbox.page(0, 2, {})
    assert ([r["n"] for r in records], last) == ([0, 1], 2)
    await transport.client.ltrim(KEYS.outbox, 3, -1)  # the three oldest go, as OUTBOX_LIMIT trims them
    records, last = await outbox.page(2, 10, {})
    assert ([r["n"] for r in records], last) == ([3, 4], None)  # positions 4 and 5: nothing skipped, none repeated
    assert (await outbox.page(4, 10, {"customer_id": "b"})) == ([{"n": 4, "customer_id": "b"}], None)
    assert key_slot(KEYS.outbox.encode()) == key_slot(KEYS.outbox_count.encode())


async def test_lua_claim_identity_sets_or_forgets_an_entry_only_if_it_points_where_expected(
        transport: Recording) -> None:
    claim = load("claim_identity")
    key = KEYS.identity("email", "lea@example.com")

    async def swap(expected: str, wanted: str) -> str:
        return str(await transport.client.eval(claim.source, 1, key, expected, wanted))

    assert await swap("", "c1") == "c1"  # nobody had it: c1 does
    assert await swap("", "c2") == "c1"  # a second claim loses, and learns who owns it
    assert await swap("c9", "") == "c1"  # someone else cannot forget it
    assert await swap("c1", "c2") == "c2"  # re-pointed from the owner it was checked against
    assert await swap("c2", "") == ""
    assert not await transport.client.exists(key)


async def test_lua_erase_customer_deletes_every_key_of_one_customer_or_only_a_tombstone_merged_into_them(
        transport: Recording) -> None:
    erase = load("erase_customer")
    customers = CustomerStore(transport, KEYS)
    for customer_id in ("c1", "visitor"):
        await customers.upsert_profile(customer_id, {"locale": "fr"}, {"tier": "gold"}, 100.0)
    assert await transport.script(erase, KEYS.customer("visitor").all(), ["c1"]) == 0  # not a tombstone: kept
    await transport.client.hset(KEYS.customer("visitor").profile, "merged_into", "c2")
    assert await transport.script(erase, KEYS.customer("visitor").all(), ["c1"]) == 0  # merged into another
    await transport.client.hset(KEYS.customer("visitor").profile, "merged_into", "c1")
    assert await transport.script(erase, KEYS.customer("visitor").all(), ["c1"]) == 2
    assert await transport.script(erase, KEYS.customer("c1").all(), [""]) == 2
    assert not await transport.client.exists(*KEYS.customer("c1").all(), *KEYS.customer("visitor").all())
    assert transport.one_slot("erase_customer")


async def test_lua_redact_outbox_replaces_records_in_place(transport: Recording) -> None:
    outbox = OutboxStore(transport.client, KEYS)
    for n in range(4):
        await outbox.append({"n": n, "customer_id": "a" if n % 2 else "b"})
    stored = await transport.client.lrange(KEYS.outbox, 0, -1)
    theirs = [text for text in stored if '"a"' in str(text)]
    assert await transport.script(load("redact_outbox"), [KEYS.outbox], ['{"erased":true}', *theirs, "gone"]) == 2
    records, _ = await outbox.page(0, 10, {})
    assert records == [{"n": 0, "customer_id": "b"}, {"erased": True}, {"n": 2, "customer_id": "b"},
                       {"erased": True}]
    assert transport.one_slot("redact_outbox")
