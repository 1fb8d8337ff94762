-- Media an admin quarantined (POST /_synapse/admin/v1/media/quarantine/...): a
-- projection of the com.linkchat.admin.media_quarantine facts of the moderation
-- chain (projections/admin.py). A quarantined file is served to no one:
-- store/media.media() does not find it. A deletion (com.linkchat.admin.media_deletion)
-- removes the file's `media` row; its bytes are then removed from disk.
CREATE TABLE quarantined_media (
    media_id        TEXT PRIMARY KEY,
    quarantined_by  TEXT NOT NULL,
    stream_position BIGINT NOT NULL
);
