"""The interlock service. Needs the `server` extra: pip install "interlock[server]"."""
