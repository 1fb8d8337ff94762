-- Ephemeral state shared by server processes that have no Redis (workers over
-- the PostgreSQL bus): typing, presence and rate-limit buckets. Not in the
-- log (DESIGN.md: truly ephemeral signals and counters), and UNLOGGED: not
-- written to the WAL, emptied by a crash, as Redis without persistence would
-- be. One process, or processes with Redis, never touch these tables.

-- Typing: who types in which room until when, each room's last change serial,
-- and the global serial sync tokens carry. The one-row serial table is what
-- writers lock, so serials become visible in the order they were taken.
CREATE UNLOGGED TABLE typing_users (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX typing_users_expiry ON typing_users (expires_at);
CREATE UNLOGGED TABLE typing_rooms (
    room_id TEXT PRIMARY KEY,
    serial BIGINT NOT NULL
);
CREATE UNLOGGED TABLE typing_serial (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    serial BIGINT NOT NULL
);
INSERT INTO typing_serial (serial) VALUES (0);

-- Presence: one record per user (presence/rules.py UserPresence), with a
-- version for compare-and-set, the position of its last visible change and
-- its next timeout. Positions come from the one-row counter, locked by the
-- writer, so a reader never sees position 11 before 10.
CREATE UNLOGGED TABLE presence_users (
    user_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    position BIGINT NOT NULL,
    deadline BIGINT,
    presence TEXT NOT NULL,
    status_msg TEXT,
    currently_active BOOLEAN NOT NULL,
    last_active_ts BIGINT NOT NULL,
    last_sync_ts BIGINT NOT NULL,
    chosen_ts BIGINT NOT NULL
);
CREATE INDEX presence_users_position ON presence_users (position);
CREATE INDEX presence_users_deadline ON presence_users (deadline) WHERE deadline IS NOT NULL;
CREATE UNLOGGED TABLE presence_position (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    position BIGINT NOT NULL
);

-- Rate-limit buckets: tokens held at a moment (seconds, PostgreSQL's clock);
-- a row is deleted once it would be full again (`full_at`), like Redis's expiry.
CREATE UNLOGGED TABLE ratelimit_buckets (
    name TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    full_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX ratelimit_buckets_full_at ON ratelimit_buckets (full_at);

-- Take costs from buckets, as ratelimit/buckets.take and the Redis script do:
-- for each name, 0 when its cost was taken, else the milliseconds until it could
-- be (at least 1). A name given twice sees its first take. One advisory lock per
-- call: calls never interleave, and never deadlock on rows taken in another order.
CREATE FUNCTION ratelimit_take(
    names TEXT[], rates DOUBLE PRECISION[], bursts DOUBLE PRECISION[],
    costs DOUBLE PRECISION[], forced BOOLEAN[]
) RETURNS BIGINT[] LANGUAGE plpgsql AS $$
DECLARE
    now DOUBLE PRECISION := extract(epoch FROM clock_timestamp());
    waits BIGINT[] := '{}';
    held RECORD;
    tokens DOUBLE PRECISION;
    cost DOUBLE PRECISION;
    wait BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(7240002);
    IF random() < 0.01 THEN
        DELETE FROM ratelimit_buckets WHERE full_at < now;
    END IF;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        SELECT b.tokens, b.at INTO held FROM ratelimit_buckets b WHERE b.name = names[i];
        tokens := bursts[i];
        IF FOUND THEN
            tokens := least(bursts[i], held.tokens + greatest(0, now - held.at) * rates[i]);
        END IF;
        cost := costs[i];
        wait := 0;
        IF NOT forced[i] THEN
            cost := least(cost, bursts[i]);
            IF tokens + 1e-9 < cost THEN
                wait := greatest(1, ceil((cost - tokens) / rates[i] * 1000));
            END IF;
        END IF;
        IF wait = 0 THEN
            tokens := least(bursts[i], greatest(-bursts[i], tokens - cost));
            IF tokens < bursts[i] THEN
                INSERT INTO ratelimit_buckets (name, tokens, at, full_at)
                VALUES (names[i], tokens, now, now + (bursts[i] - tokens) / rates[i])
                ON CONFLICT (name) DO UPDATE
                    SET tokens = EXCLUDED.tokens, at = EXCLUDED.at, full_at = EXCLUDED.full_at;
            ELSE
                DELETE FROM ratelimit_buckets WHERE name = names[i];
            END IF;
        END IF;
        waits := waits || wait;
    END LOOP;
    RETURN waits;
END
$$;
