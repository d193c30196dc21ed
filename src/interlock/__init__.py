"""interlock: feature flags, experiments and progressive delivery, self-hosted."""

__version__ = "0.1.0"
