"""What the server tells clients it can do: /versions and /capabilities."""

from __future__ import annotations

from tests.matrix import MatrixClient


async def test_versions_lists_only_what_clients_may_rely_on(hs: MatrixClient) -> None:
    body = await hs.ok("GET", "/_matrix/client/versions")
    assert body["versions"] == ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5"]
    # v1.6 would tell clients that /timestamp_to_event is served.
    assert "v1.6" not in body["versions"]
    # Private read receipts are served, so they are announced on their own.
    assert body["unstable_features"] == {"org.matrix.msc2285.stable": True}


async def test_capabilities_describe_what_this_server_allows(hs: MatrixClient) -> None:
    alice = await hs.register()
    capabilities = (await hs.ok("GET", "capabilities", user=alice))["capabilities"]
    assert capabilities["m.change_password"] == {"enabled": True}
    assert capabilities["m.set_displayname"] == {"enabled": True}
    assert capabilities["m.set_avatar_url"] == {"enabled": True}
    assert capabilities["m.3pid_changes"] == {"enabled": True}  # email addresses
    versions = capabilities["m.room_versions"]
    available = {str(version): "stable" for version in range(1, 13)}
    assert versions == {"default": "11", "available": available}


async def test_a_room_of_every_advertised_version_can_be_created(hs: MatrixClient) -> None:
    alice = await hs.register()
    capabilities = (await hs.ok("GET", "capabilities", user=alice))["capabilities"]
    for version in capabilities["m.room_versions"]["available"]:
        await hs.create_room(alice, room_version=version)
    reply = await hs.request("POST", "createRoom", {"room_version": "13"}, user=alice)
    assert reply.status == 400 and reply.errcode == "M_UNSUPPORTED_ROOM_VERSION"


async def test_capabilities_need_an_access_token(hs: MatrixClient) -> None:
    reply = await hs.request("GET", "capabilities")
    assert reply.status == 401 and reply.errcode == "M_MISSING_TOKEN"
