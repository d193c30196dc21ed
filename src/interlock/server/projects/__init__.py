"""Projects and their ordered environments."""
