"""Account data: a user's global and per-room data, room tags, and the ignore list."""
