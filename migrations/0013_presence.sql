-- Presence needs no table: it is ephemeral (DESIGN.md), held in memory by one
-- process or in Redis when redis.url is set. The number is kept so that the
-- migrations after it keep theirs.
SELECT 1;
