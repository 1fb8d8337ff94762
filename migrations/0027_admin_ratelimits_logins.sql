-- Rate limit overrides (Synapse's override_ratelimit admin API): a projection of
-- the com.linkchat.admin.ratelimit_override facts of the moderation chain
-- (projections/admin.py), so `audit replay` rebuilds it. Every process loads it
-- into its rate limiter at start and again when an admin changes it (a bus
-- message, admin/ratelimits.py). messages_per_second 0: not limited at all.
CREATE TABLE ratelimit_overrides (
    user_id             TEXT PRIMARY KEY,
    messages_per_second BIGINT NOT NULL,
    burst_count         BIGINT NOT NULL,
    stream_position     BIGINT NOT NULL
);

-- Access tokens an admin obtained to act as a user (POST
-- /_synapse/admin/v1/users/{userId}/login): they may expire. NULL: never.
ALTER TABLE access_tokens ADD COLUMN valid_until_ms BIGINT;
