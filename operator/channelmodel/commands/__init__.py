"""Small CLI commands that talk to the Kubernetes API."""
