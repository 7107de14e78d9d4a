"""The one door to the Kubernetes API: client (sync and async), errors, resources, watches."""
