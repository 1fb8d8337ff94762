"""Moderation: reports of events, rooms and users, mutes, shadow-bans; facts of the
moderation chain (events/types.py) or the rooms' own power levels."""
