-- Auditing: purging the content of redacted events, and nothing else.
--
-- `homeserver admin purge-redacted` replaces the content of an event redacted
-- long enough ago with its redacted form (the Matrix redaction algorithm, room
-- version 11). The log still verifies: the signature and the event ID cover
-- the redacted form, and the content hash stays, showing content was there.
-- The append-only trigger of 0001 is replaced by one that lets exactly that
-- UPDATE through and records it; any other UPDATE, every DELETE and TRUNCATE
-- are still refused.

-- Not in the log: the record of each purge, an operator's action on how the
-- log is stored rather than a fact of the domain. Written by the trigger only.
CREATE TABLE purged_events (
    event_id        TEXT PRIMARY KEY,
    stream_position BIGINT NOT NULL,
    redaction_id    TEXT NOT NULL,
    purged_ts       BIGINT NOT NULL
);

-- The content keys an event keeps when redacted (room version 11); the same
-- rules as homeserver/events/redaction.py, which a test holds them to.
CREATE FUNCTION redacted_content(event_type TEXT, content JSONB) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    kept TEXT[];
    result JSONB;
BEGIN
    IF event_type = 'm.room.create' THEN
        RETURN content;
    END IF;
    kept := CASE event_type
        WHEN 'm.room.member' THEN ARRAY['membership', 'join_authorised_via_users_server']
        WHEN 'm.room.join_rules' THEN ARRAY['join_rule', 'allow']
        WHEN 'm.room.power_levels' THEN ARRAY['ban', 'events', 'events_default', 'invite',
            'kick', 'redact', 'state_default', 'users', 'users_default']
        WHEN 'm.room.history_visibility' THEN ARRAY['history_visibility']
        WHEN 'm.room.redaction' THEN ARRAY['redacts']
        ELSE ARRAY[]::TEXT[]
    END;
    SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) INTO result
        FROM jsonb_each(content) WHERE key = ANY (kept);
    IF event_type = 'm.room.member'
        AND jsonb_typeof(content -> 'third_party_invite') = 'object'
        AND content -> 'third_party_invite' ? 'signed' THEN
        result := result || jsonb_build_object(
            'third_party_invite',
            jsonb_build_object('signed', content -> 'third_party_invite' -> 'signed'));
    END IF;
    RETURN result;
END;
$$;

-- An UPDATE passes only if every column but `json` is unchanged, the new JSON
-- is the old one with its content replaced by the redacted form, and the log
-- holds a redaction of the event (found through the redactions projection,
-- checked against the redaction event itself).
CREATE FUNCTION events_are_append_only_but_purge() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    redaction TEXT;
BEGIN
    IF TG_OP = 'UPDATE'
        AND to_jsonb(NEW) - 'json' = to_jsonb(OLD) - 'json'
        AND NEW.json::jsonb = jsonb_set(
            OLD.json::jsonb, '{content}',
            redacted_content(OLD.type, OLD.json::jsonb -> 'content')) THEN
        SELECT r.event_id INTO redaction
            FROM redactions x JOIN events r ON r.event_id = x.redaction_id
            WHERE x.redacts = OLD.event_id
                AND r.room_id = OLD.room_id
                AND r.type = 'm.room.redaction'
                AND r.json::jsonb -> 'content' ->> 'redacts' = OLD.event_id;
        IF redaction IS NOT NULL THEN
            INSERT INTO purged_events (event_id, stream_position, redaction_id, purged_ts)
                VALUES (OLD.event_id, OLD.stream_position, redaction,
                        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
                ON CONFLICT (event_id) DO NOTHING;
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed (only purge-redacted may replace the content of a redacted event with its redacted form)', TG_OP;
END;
$$;

DROP TRIGGER events_append_only ON events;
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only_but_purge();
