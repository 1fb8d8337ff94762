"""Push notifications: the server-default push rules (editing and pushers come later)."""
