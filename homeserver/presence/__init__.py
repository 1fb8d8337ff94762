"""Presence: who is online, idle or offline, shared with the people they share a room with."""
