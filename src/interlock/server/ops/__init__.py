"""Health, readiness, metrics, version and the problem type documentation."""
