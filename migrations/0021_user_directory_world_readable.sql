-- Projection (projections/profiles.py): the rooms whose members are in every
-- user's directory now say why, as Synapse's user directory counts a room public
-- when it is publicly joinable or world_readable (issue 14, item 16):
--   reason  'public' (m.room.join_rules is public) or 'world_readable'
--           (m.room.history_visibility is world_readable)
-- A room is there once per reason, and leaves with its last reason.
ALTER TABLE user_directory_public_rooms
    ADD COLUMN reason TEXT NOT NULL DEFAULT 'public',
    DROP CONSTRAINT user_directory_public_rooms_pkey,
    ADD PRIMARY KEY (room_id, reason);
ALTER TABLE user_directory_public_rooms ALTER COLUMN reason DROP DEFAULT;

INSERT INTO user_directory_public_rooms (room_id, reason)
SELECT s.room_id, 'world_readable'
FROM current_state s
JOIN events e ON e.event_id = s.event_id
WHERE s.type = 'm.room.history_visibility' AND s.state_key = ''
  AND (e.json::jsonb) -> 'content' ->> 'history_visibility' = 'world_readable';
