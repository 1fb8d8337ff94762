from tests.matrix import MatrixClient


async def test_new_user_can_create_room_and_send(hs: MatrixClient) -> None:
    alice = await hs.register()
    room = await hs.create_room(alice, name="smoke")
    event_id = await hs.send(alice, room)
    event = await hs.ok("GET", f"rooms/{room}/event/{event_id}", user=alice)
    assert event["content"]["body"] == "hello"
