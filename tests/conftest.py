"""Fixtures shared by every test: the Kubernetes API emulator, the local job
runner and operator processes (tests/support/)."""

import os

# Servers the tests start listen on loopback, which the egress policy refuses
# by default (channelmodel/egress.py): the tests allow it explicitly, as the
# sandbox does. Tests of the refusal pass their own EgressPolicy.
os.environ.setdefault("CHANNELMODEL_EGRESS_ALLOW_NETWORKS", "127.0.0.0/8,::1/128")

pytest_plugins = [
    "tests.support.k8s",
    "tests.support.operator",
    "tests.support.standin",
    "tests.support.webhook",
]
