"""Admin API: quarantined media is served to no one; deleted media is gone."""

from __future__ import annotations

from homeserver.api.media import MEDIA
from tests.admin import SERVER_NAME, assert_admins_only, start_with_admin
from tests.audit_log import assert_replay_identical
from tests.conftest import AppFactory
from tests.test_media import download_path, get, image_bytes, thumbnail_path, upload_ok

ADMIN_MEDIA = "/_synapse/admin/v1/media"
AUDIT = "/_linkchat/v1/admin/audit"


async def test_media_endpoints_are_for_admins_only(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, user = server.hs, server.user
    uri = await upload_ok(hs, user, b"mine", "text/plain")
    tail = f"{uri.server_name}/{uri.media_id}"
    await assert_admins_only(hs, user, "POST", f"{ADMIN_MEDIA}/quarantine/{tail}", {})
    await assert_admins_only(hs, user, "POST", f"{ADMIN_MEDIA}/unquarantine/{tail}", {})
    await assert_admins_only(hs, user, "DELETE", f"{ADMIN_MEDIA}/{tail}")
    assert (await get(hs, download_path(uri), user)).status == 200


async def test_quarantined_media_is_served_to_no_one(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root, alice = server.hs, server.admin, server.user
    bob = await hs.register()
    uri = await upload_ok(hs, alice, image_bytes((64, 64)), "image/png")
    tail = f"{uri.server_name}/{uri.media_id}"
    assert (await get(hs, thumbnail_path(uri), bob, width="32", height="32")).status == 200

    await hs.ok("POST", f"{ADMIN_MEDIA}/quarantine/{tail}", {"reason": "gore"}, user=root)
    for viewer in (alice, bob, root):
        refused = await get(hs, download_path(uri), viewer)
        assert (refused.status, refused.json()["errcode"]) == (404, "M_NOT_FOUND")
        thumb = await get(hs, thumbnail_path(uri), viewer, width="32", height="32")
        assert thumb.status == 404

    await hs.ok("POST", f"{ADMIN_MEDIA}/unquarantine/{tail}", {}, user=root)
    served = await get(hs, download_path(uri), bob)
    assert served.status == 200 and served.body == image_bytes((64, 64))

    trail = await hs.ok("GET", f"{AUDIT}?target=mxc://{tail}&dir=f", user=root)
    assert [(a["action"], a.get("reason")) for a in trail["actions"]] == [
        ("media.quarantine", "gore"),
        ("media.unquarantine", None),
    ]
    await assert_replay_identical(fresh_dsn)


async def test_deleted_media_is_gone_with_its_bytes(start_app: AppFactory, fresh_dsn: str) -> None:
    server = await start_with_admin(start_app, fresh_dsn)
    hs, root, alice = server.hs, server.admin, server.user
    uri = await upload_ok(hs, alice, image_bytes((40, 40)), "image/png")
    tail = f"{uri.server_name}/{uri.media_id}"
    assert (await get(hs, thumbnail_path(uri), alice, width="32", height="32")).status == 200
    await hs.ok("POST", f"{ADMIN_MEDIA}/quarantine/{tail}", {}, user=root)

    deleted = await hs.ok("DELETE", f"{ADMIN_MEDIA}/{tail}", user=root)
    assert deleted == {"deleted_media": [uri.media_id], "total": 1}
    assert (await get(hs, download_path(uri), alice)).status == 404
    store = hs.app[MEDIA].store
    assert not store.path(uri.media_id).exists()
    assert not store.thumbnail_path(uri.media_id, "x").parent.exists()
    again = await hs.request("DELETE", f"{ADMIN_MEDIA}/{tail}", user=root)
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")
    trail = await hs.ok("GET", f"{AUDIT}?target=mxc://{tail}", user=root)
    assert trail["actions"][0]["action"] == "media.delete"
    await assert_replay_identical(fresh_dsn)


async def test_media_admin_refuses_what_is_not_ours(start_app: AppFactory) -> None:
    server = await start_with_admin(start_app)
    hs, root = server.hs, server.admin
    unknown = await hs.request(
        "POST", f"{ADMIN_MEDIA}/quarantine/{SERVER_NAME}/nope", {}, user=root
    )
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    remote = await hs.request("DELETE", f"{ADMIN_MEDIA}/elsewhere.org/abc", user=root)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    bad = await hs.request("POST", f"{ADMIN_MEDIA}/quarantine/{SERVER_NAME}/a.b", {}, user=root)
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
