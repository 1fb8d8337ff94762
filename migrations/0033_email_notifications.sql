-- Email notifications (homeserver/email/notifier.py). Not in the log: how far each
-- email pusher's emails have got, like the pushers themselves (0016). A row is
-- claimed (last_position moved) before its email is sent and given back if the
-- mail server refuses it, so a restart never sends an email a second time.
CREATE TABLE email_pusher_progress (
    pusher_id     BIGINT PRIMARY KEY REFERENCES pushers (pusher_id) ON DELETE CASCADE,
    last_position BIGINT NOT NULL,
    last_sent_ts  BIGINT
);
