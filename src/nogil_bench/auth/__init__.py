"""Users, passwords and access tokens."""
