"""Black-box Matrix Client-Server suite: drives a running homeserver over HTTP only.

Nothing here imports the `homeserver` package; see conftest.py for how the
server under test is started (or pointed at with SYTEST_LITE_BASE_URL).
"""
