"""A Kubernetes stand-in for tests and `channelmodel dev`: API emulator, job runner, kubeconfig."""
