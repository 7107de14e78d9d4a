"""In-memory stand-ins for the Kubernetes API, for tests and benchmarks."""
