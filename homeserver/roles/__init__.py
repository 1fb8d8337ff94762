"""Named roles (owner, admin, moderator, member) over Matrix power levels."""
