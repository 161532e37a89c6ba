"""Test support shared by every test package: the Kubernetes emulator, job runner and operator process."""
