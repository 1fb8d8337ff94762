-- A room's state events of one type, by position: history visibility, membership
-- as of a position and state as of a position read a handful of rows instead of
-- scanning every event of the room.
CREATE INDEX events_room_state ON events (room_id, type, state_key, stream_position)
    WHERE state_key IS NOT NULL;
