"""Background jobs: Huey queues, our own job and worker records, the runner and the API."""
