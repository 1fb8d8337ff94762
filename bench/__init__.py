"""Load benchmarks for a Matrix Client-Server API homeserver.

A pure HTTP client: it imports nothing from the `homeserver` package, so it
can measure any server that speaks the Client-Server API at a base URL.
Run `python -m bench --help` for the scenarios.
"""
