#!/bin/sh
# Run one benchmark scenario against a throw-away local server: create a fresh
# PostgreSQL database, start `python -m homeserver run` on 127.0.0.1:18448,
# measure, stop the server, drop the database.
#
#   bench/run_local.sh send
#   bench/run_local.sh send --senders 1,10 --json send.json
#
# Needs a PostgreSQL that `psql postgresql://postgres@127.0.0.1:5432/postgres`
# can create databases on (else pass --pg-admin-dsn DSN).
set -eu
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
    exec .venv/bin/python -m bench --help
fi
exec .venv/bin/python -m bench "$@" --spawn-server
