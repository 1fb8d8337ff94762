"""The path prefixes the API is served under."""

V3 = "/_matrix/client/v3"  # the Matrix Client-Server API
LINKCHAT = "/_linkchat/v1"  # LinkChat's own endpoints (spec/openapi.json)
