-- Pruning push_notifications (homeserver/push/pruning.py): GET /notifications
-- lists the last `push.notifications_kept_days` (30 by default, as Synapse keeps
-- its push actions about a month); older rows are deleted in bounded batches by
-- the process that runs the push follower.

-- Finding the old rows: the table's only other index is its key, per user.
CREATE INDEX push_notifications_by_ts ON push_notifications (ts);

-- What the pruned rows still count. A deleted row that the user had not read
-- still counts in unread_notifications (a room unread for two months still
-- shows its badge), so its count moves here: per user, room and thread, how
-- many notifications and highlights were folded away, and the newest position
-- among them. A read receipt at or after that position reads them all (a receipt
-- between the folded positions is taken as reading none: a badge too high
-- rather than one that hides a mention); a later pruning round deletes the row.
-- Not a projection: a summary of the push follower's output (see 0016_push.sql).
CREATE TABLE push_notification_backlog (
    user_id         TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    thread_id       TEXT NOT NULL,   -- 'main', or the root of the events' thread
    stream_position BIGINT NOT NULL, -- the newest folded notification's
    notifications   INTEGER NOT NULL,
    highlights      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);
