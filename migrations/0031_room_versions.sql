-- Room versions 1 to 12 (homeserver/events/room_versions.py): the redaction
-- algorithm, and where a redaction names its target, depend on the room's
-- version. purge-redacted replaces a redacted event's content by its redacted
-- form in its room's version, so the append-only trigger (0006) must compute that
-- form the same way: the same rules as homeserver/events/redaction.py, which a
-- test holds them to for every version. A chain that is no room, or a version
-- not known, is redacted as version 11 (as every event was before this).
CREATE FUNCTION redacted_content(event_type TEXT, content JSONB, room_version TEXT)
RETURNS JSONB LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v INT := 11;
    v11 BOOLEAN;
    kept TEXT[];
    result JSONB;
BEGIN
    IF room_version IN ('1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12') THEN
        v := room_version::INT;
    END IF;
    v11 := v >= 11;
    IF event_type = 'm.room.create' AND v11 THEN
        RETURN content;
    END IF;
    kept := CASE event_type
        WHEN 'm.room.member' THEN CASE WHEN v >= 9
            THEN ARRAY['membership', 'join_authorised_via_users_server']
            ELSE ARRAY['membership'] END
        WHEN 'm.room.create' THEN ARRAY['creator']
        WHEN 'm.room.join_rules' THEN CASE WHEN v >= 8
            THEN ARRAY['join_rule', 'allow'] ELSE ARRAY['join_rule'] END
        WHEN 'm.room.power_levels' THEN ARRAY['ban', 'events', 'events_default', 'kick',
            'redact', 'state_default', 'users', 'users_default']
            || CASE WHEN v11 THEN ARRAY['invite'] ELSE ARRAY[]::TEXT[] END
        WHEN 'm.room.history_visibility' THEN ARRAY['history_visibility']
        WHEN 'm.room.redaction' THEN CASE WHEN v11 THEN ARRAY['redacts']
            ELSE ARRAY[]::TEXT[] END
        WHEN 'm.room.aliases' THEN CASE WHEN v <= 5 THEN ARRAY['aliases']
            ELSE ARRAY[]::TEXT[] END
        ELSE ARRAY[]::TEXT[]
    END;
    SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb) INTO result
        FROM jsonb_each(content) WHERE key = ANY (kept);
    IF v11 AND event_type = 'm.room.member'
        AND jsonb_typeof(content -> 'third_party_invite') = 'object'
        AND content -> 'third_party_invite' ? 'signed' THEN
        result := result || jsonb_build_object(
            'third_party_invite',
            jsonb_build_object('signed', content -> 'third_party_invite' -> 'signed'));
    END IF;
    RETURN result;
END;
$$;

-- As 0006, with the redacted form of the event's room version, and a redaction
-- that names its target at the top level (versions 1 to 10) found as well.
CREATE OR REPLACE FUNCTION events_are_append_only_but_purge() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    redaction TEXT;
    version TEXT;
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(NEW) - 'json' = to_jsonb(OLD) - 'json' THEN
        SELECT room_version INTO version FROM rooms WHERE room_id = OLD.room_id;
        IF NEW.json::jsonb = jsonb_set(
                OLD.json::jsonb, '{content}',
                redacted_content(OLD.type, OLD.json::jsonb -> 'content', version)) THEN
            SELECT r.event_id INTO redaction
                FROM redactions x JOIN events r ON r.event_id = x.redaction_id
                WHERE x.redacts = OLD.event_id
                    AND r.room_id = OLD.room_id
                    AND r.type = 'm.room.redaction'
                    AND coalesce(r.json::jsonb -> 'content' ->> 'redacts',
                                 r.json::jsonb ->> 'redacts') = OLD.event_id;
            IF redaction IS NOT NULL THEN
                INSERT INTO purged_events (event_id, stream_position, redaction_id, purged_ts)
                    VALUES (OLD.event_id, OLD.stream_position, redaction,
                            (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
                    ON CONFLICT (event_id) DO NOTHING;
                RETURN NEW;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION 'the event log is append-only: % on events is not allowed (only purge-redacted may replace the content of a redacted event with its redacted form)', TG_OP;
END;
$$;
