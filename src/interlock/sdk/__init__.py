"""The Python SDK (local evaluation). Built in the SDK issue."""
