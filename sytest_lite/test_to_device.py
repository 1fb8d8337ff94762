"""Spec: "Send-to-Device messaging" (PUT /sendToDevice/{eventType}/{txnId})."""

from __future__ import annotations

from typing import Any

from sytest_lite.client import Api, Registered, assert_error, q


async def _send(api: Api, who: Registered, txn_id: str, body: Any) -> tuple[int, Any]:
    return await api.request(
        "PUT", f"/sendToDevice/m.test/{q(txn_id)}", json=body, token=who.access_token
    )


async def _to_device(api: Api, who: Registered, since: str | None = None) -> tuple[list[Any], str]:
    params = {"timeout": "0"} if since is None else {"since": since, "timeout": "0"}
    status, body = await api.request("GET", "/sync", token=who.access_token, params=params)
    assert status == 200, body
    return body.get("to_device", {}).get("events", []), body["next_batch"]


async def test_send_to_device_returns_an_empty_object(
    api: Api, alice: Registered, bob: Registered
) -> None:
    body = {"messages": {bob.user_id: {bob.device_id: {"hello": "bob"}}}}
    assert await _send(api, alice, "t1", body) == (200, {})


async def test_message_is_delivered_once_by_sync(
    api: Api, alice: Registered, bob: Registered
) -> None:
    body = {"messages": {bob.user_id: {bob.device_id: {"hello": "bob"}}}}
    assert (await _send(api, alice, "t1", body))[0] == 200
    assert (await _send(api, alice, "t1", body))[0] == 200  # a retry, not a second message
    events, next_batch = await _to_device(api, bob)
    assert events == [{"type": "m.test", "sender": alice.user_id, "content": {"hello": "bob"}}]
    events, _ = await _to_device(api, bob, next_batch)
    assert events == []


async def test_wildcard_reaches_every_device(api: Api, alice: Registered, bob: Registered) -> None:
    second = await api.login_ok(bob.user_id)
    body = {"messages": {bob.user_id: {"*": {"to": "all"}}}}
    assert (await _send(api, alice, "t-all", body))[0] == 200
    for device in (bob, second):
        events, _ = await _to_device(api, device)
        assert [e["content"] for e in events] == [{"to": "all"}]


async def test_unknown_recipients_are_ignored(api: Api, alice: Registered) -> None:
    body: dict[str, Any] = {
        "messages": {"@nobody-here:localhost": {"*": {}}, alice.user_id: {"NODEVICE": {}}}
    }
    assert await _send(api, alice, "t-unknown", body) == (200, {})


async def test_body_without_messages_is_bad_json(api: Api, alice: Registered) -> None:
    status, body = await _send(api, alice, "t-bad", {})
    assert_error(status, body, 400, "M_BAD_JSON")


async def test_send_to_device_needs_an_access_token(api: Api) -> None:
    status, body = await api.request("PUT", "/sendToDevice/m.test/t", json={"messages": {}})
    assert_error(status, body, 401, "M_MISSING_TOKEN")
