"""Helpers for tests and benchmarks that run the project's commands as processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from channelmodel_sandbox.controlplane import free_port

__all__ = ["DevProcess", "WaitFailed", "free_port"]


def pids_mentioning(text: str) -> list[int]:
    """Processes (not this one) whose command line or environment contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(proc.name))
    return found


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class WaitFailed(AssertionError):
    """The process never printed the awaited line."""


class DevProcess:
    """`channelmodel dev` (or any narrating command) as a subprocess; output kept as lines."""

    def __init__(self, argv: list[str], cwd: Path, log: Path | None = None) -> None:
        self.lines: list[str] = []
        self._log: IO[str] | None = log.open("w") if log else None
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if self._log:
                self._log.write(line)
                self._log.flush()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first output line containing `text`; WaitFailed after `timeout` or an exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise WaitFailed(f"no {text!r} within {timeout}s; output:\n" + "\n".join(self.lines[-60:]))

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a person would; SIGKILL the group if it does not stop in time."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
