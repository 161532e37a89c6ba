"""Fixtures shared by every test: the Kubernetes API emulator, the local job
runner and operator processes (tests/support/)."""

pytest_plugins = [
    "tests.support.k8s",
    "tests.support.operator",
    "tests.support.standin",
    "tests.support.webhook",
]
