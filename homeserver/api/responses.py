"""Rendering responses: every JSON body the API sends goes out through here."""

from __future__ import annotations

import json

from aiohttp import web

# RFC 8259 registers application/json without parameters: there is no `charset` (JSON
# is UTF-8), and some clients compare the header literally, so every JSON response of
# the server is made here and says exactly this.
JSON_CONTENT_TYPE = "application/json"


def json_response(body: bytes, status: int = 200) -> web.Response:
    """A response of JSON already encoded, with the exact Content-Type of JSON."""
    return web.Response(body=body, status=status, content_type=JSON_CONTENT_TYPE)


def ok(body: object = None, status: int = 200) -> web.Response:
    return json_response(json.dumps({} if body is None else body).encode(), status)
