-- Shadow-ban periods (homeserver/moderation): a projection of the moderation
-- chain's com.linkchat.shadow_ban facts (projections/shadow_bans.py), so `audit
-- replay` rebuilds it. A user's events after banned_at and before unbanned_at
-- (NULL: still banned) are hidden from everyone but them, for good: the one rule
-- is rooms/shadow_bans.py, and store/shadow_bans.py its SQL form.
CREATE TABLE shadow_ban_periods (
    user_id     TEXT NOT NULL,
    banned_at   BIGINT NOT NULL,
    unbanned_at BIGINT,
    PRIMARY KEY (user_id, banned_at)
);
