-- Media. The bytes of uploaded files live on disk under media.store_path,
-- outside the log; what the log says about each file is a com.linkchat.media
-- event (a non-state event) in its uploader's account chain.

-- Projection of the com.linkchat.media events: one row per uploaded file,
-- read by downloads and thumbnails. Rebuildable from the log.
CREATE TABLE media (
    media_id        TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    filename        TEXT,
    size            BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    created_ts      BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    stream_position BIGINT NOT NULL
);
CREATE INDEX media_by_user ON media (user_id, created_ts);

-- Not in the log: reservations made by POST /_matrix/media/v1/create. A
-- reservation is a short-lived promise (it expires unused after 24 hours)
-- that becomes a fact only when its bytes arrive; then the com.linkchat.media
-- event records the file and the reservation row is deleted. Keeping the
-- promises out of the log keeps abandoned ones from growing it forever.
-- claimed_ts is set while an upload to the reservation is being streamed, so
-- two concurrent uploads to one media ID cannot both succeed.
CREATE TABLE media_reservations (
    media_id   TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    expires_ts BIGINT NOT NULL,
    claimed_ts BIGINT
);
CREATE INDEX media_reservations_by_user ON media_reservations (user_id, expires_ts);
CREATE INDEX media_reservations_by_expiry ON media_reservations (expires_ts);
