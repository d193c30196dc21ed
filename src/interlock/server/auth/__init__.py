"""Users, sessions, API keys, roles and the authorization policy."""
