"""The path prefixes the API is served under."""

V3 = "/_matrix/client/v3"  # the Matrix Client-Server API
LINKCHAT = "/_linkchat/v1"  # LinkChat's own endpoints (spec/openapi.json)
SYNAPSE_ADMIN = "/_synapse/admin"  # the Synapse Admin API, for its existing clients
LINKCHAT_ADMIN = LINKCHAT + "/admin"  # our own admin endpoints
