"""What a user shows of themselves: the profile, and the user directory."""
