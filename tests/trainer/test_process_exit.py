"""The `channelmodel` process skips TensorFlow's teardown but loses no output."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run_entry(main_body: str) -> subprocess.CompletedProcess[str]:
    """Run `channelmodel.cli.entry()` in a fresh interpreter with `main` replaced."""
    body = textwrap.indent(textwrap.dedent(main_body).strip(), "    ")
    script = "\n".join(
        [
            "import logging, sys",
            "from channelmodel import cli",
            "def main():",
            body,
            "cli.main = main",
            "logging.basicConfig(stream=sys.stderr, level=logging.INFO)",
            "cli.entry()",
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_process_that_loaded_tensorflow_exits_with_its_status_and_every_line() -> None:
    # stdout to a pipe is block-buffered: without the flush before os._exit the
    # result JSON (printed last) would be lost.
    done = run_entry(
        """
        import tensorflow
        logging.getLogger("trainer").info("last log line")
        print('{"ok": true}')
        return 3
        """
    )

    assert done.returncode == 3
    assert done.stdout.strip() == '{"ok": true}'
    assert "last log line" in done.stderr


def test_a_process_without_tensorflow_exits_normally_and_runs_its_exit_handlers() -> None:
    done = run_entry(
        """
        import atexit
        atexit.register(lambda: print("exit handler ran"))
        print("result")
        return 0
        """
    )

    assert done.returncode == 0
    assert done.stdout.split() == ["result", "exit", "handler", "ran"]
    assert "tensorflow" not in done.stderr


def test_a_failed_early_tensorflow_import_is_left_to_the_base_models_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The import started ahead runs in a thread: its failure must not escape there
    (the base model's load imports again, and fails the run with the reason)."""
    import threading

    from channelmodel_trainer import cli, tfcompat

    def broken() -> None:
        raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")

    monkeypatch.setattr(tfcompat, "tf_keras", broken)
    started = set(threading.enumerate())
    with caplog.at_level("DEBUG", logger="channelmodel_trainer"):
        cli._start_importing_tensorflow()
        for thread in set(threading.enumerate()) - started:
            assert thread.name == "import-tensorflow"
            thread.join(timeout=10)
    assert "importing TensorFlow ahead failed: libtensorflow_framework.so.2" in caplog.text
