-- Channels and roles need no tables of their own: a channel is a room type
-- (m.room.create content.type) and a role is a power level. The number is
-- kept so that the migrations after it keep theirs.
SELECT 1;
