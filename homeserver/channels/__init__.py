"""Broadcast channels: rooms where admins post and subscribers read and react."""
