"""Server administration: who is an admin, the audit trail of what admins did, and the
services behind the admin API (`/_synapse/admin/...`, `/_linkchat/v1/admin/...`).

Every admin action is a fact of the moderation chain (events/types.py), recorded
through `audit.AuditTrail.record`, so `audit replay` rebuilds what admins decided.
"""
