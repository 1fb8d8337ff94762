-- Profiles and the user directory: projections of the log, rebuilt by
-- homeserver/projections/profiles.py. Account data already has its table
-- (0004_read_path.sql); m.tag, m.direct and m.ignored_user_list live there.

-- What the user directory matches a search term against: the words of the
-- display name and of the localpart, whole and split at . _ = - / +.
CREATE FUNCTION user_directory_vector(user_id TEXT, displayname TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig, coalesce(displayname, ''))
        || to_tsvector('simple'::regconfig, split_part(substr(user_id, 2), ':', 1))
        || to_tsvector(
            'simple'::regconfig,
            translate(split_part(substr(user_id, 2), ':', 1), '._=-/+', '      ')
        )
$$;

-- Each user's global profile: the `com.linkchat.profile` state of their account
-- chain, or, until they first set one, the default their registration implies
-- (display name = localpart, no avatar). `search_vector` is computed from the
-- row (never written by the reducer); prefix queries ('ali':*) on its GIN index
-- find users without scanning them all.
CREATE TABLE profiles (
    user_id       TEXT PRIMARY KEY,
    displayname   TEXT,
    avatar_url    TEXT,
    search_vector tsvector NOT NULL
        GENERATED ALWAYS AS (user_directory_vector(user_id, displayname)) STORED
);
CREATE INDEX profiles_directory_search ON profiles USING GIN (search_vector);

-- The directory leaves deactivated users out; there are few of them.
CREATE INDEX users_deactivated ON users (user_id) WHERE deactivated;

-- Rooms whose join rule is public (from m.room.join_rules): their members are
-- in every user's directory, as the spec asks.
CREATE TABLE user_directory_public_rooms (
    room_id TEXT PRIMARY KEY
);
