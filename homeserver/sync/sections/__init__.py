"""The sections of a /sync response, each written once, against `WindowSource`, for
syncs built from the in-memory tail and from the database alike.

A section is an async function of the `SyncAssembly` (sync/assembly.py) that
writes its part of the response. They run in two rounds (`SyncService`): the
room sections write what decides whether a joined room is shown (timeline,
state, ephemeral events, account data); then, on an incremental sync, the
joined rooms with nothing to show are dropped; then the other sections write
what goes with the rooms shown (unread counts, summaries) and the rest of the
body (to-device, presence). A new section is one more function in one of the
rounds: `SyncService.add_section`.
"""
