"""LinkChat homeserver: an event-sourced Matrix Client-Server API server."""

__version__ = "0.1.0"
