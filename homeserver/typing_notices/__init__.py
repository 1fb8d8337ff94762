"""Typing notices: ephemeral, never in the log; in memory or shared through Redis."""
