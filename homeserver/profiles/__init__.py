"""What a user keeps about themselves: profile, account data and tags, and the user directory."""
