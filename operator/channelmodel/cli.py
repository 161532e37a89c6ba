"""The `channelmodel` command: operator, model server, trainer and tools for one
Teachable Machine image model per shop channel.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their subcommand runs, so
the operator image never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from channelmodel import __version__

EPILOG = """\
ChannelModel commands (status, retrain, notify-change) find the object like
kubectl: --kubeconfig, --context, and -n defaulting to the context's namespace.
Exit status: 0 ok, 1 API error, 2 usage error, 3 no such ChannelModel,
4 no usable kubeconfig; dev: 130 after Ctrl-C, 143 after SIGTERM.
Docs: README.md, docs/operations.md. `channelmodel COMMAND --help` for each."""

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "channelmodel.operator_main",
        "Run the operator (kopf) against the current kubeconfig.",
    ),
    "train": (
        "channelmodel_trainer.cli",
        "Train one model version from a manifest and publish it.",
    ),
    "serve": ("channelmodel.server.cli", "Serve model artifacts over HTTP."),
    "crd": (
        "channelmodel.api.cli",
        "Print the CustomResourceDefinition generated from the models.",
    ),
    "status": (
        "channelmodel.commands.status",
        "Show a ChannelModel: what it serves, the last run, what it waits for.",
    ),
    "retrain": (
        "channelmodel.commands.retrain",
        "Request a manual retrain of a ChannelModel (skips debounce and cooldown).",
    ),
    "notify-change": (
        "channelmodel.commands.notify_change",
        "Report a catalog change of a ChannelModel.",
    ),
    "import": (
        "channelmodel.migrate.cli",
        "Import a Teachable Machine export as a channel version.",
    ),
}

# The sandbox is a separate distribution (sandbox/, `channelmodel-sandbox`) that the
# operator image does not install: its subcommands exist only where it is installed.
SANDBOX_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "dev": (
        "channelmodel_sandbox.dev",
        "Run the whole loop locally: API emulator, operator, jobs, server.",
    ),
    "emulator": (
        "channelmodel_sandbox.cli",
        "Run the Kubernetes API emulator and local job runner.",
    ),
}


def available_subcommands() -> dict[str, tuple[str, str]]:
    if importlib.util.find_spec("channelmodel_sandbox") is None:
        return dict(SUBCOMMANDS)
    return {**SUBCOMMANDS, **SANDBOX_SUBCOMMANDS}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="channelmodel",
        description=" ".join(__doc__.split("\n\n")[0].split()) if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"channelmodel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in available_subcommands().items():
        sub_parser = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # Only the chosen subcommand's module is imported (it may need TensorFlow).
        if name in argv:
            module = importlib.import_module(module_name)
            if module.__doc__:  # the module's docstring explains the command at length
                sub_parser.description = module.__doc__.strip().replace("`", "")
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list[:1])
    args = parser.parse_args(args_list)
    return int(args._run(args) or 0)


def entry() -> NoReturn:
    """The console script: main(), then exit with its status.

    A process that loaded TensorFlow (the trainer) skips the interpreter's
    teardown of it, about 0.5 s on the path from a catalog change to the served
    model: by then the result is written, and logs and streams are flushed here.
    """
    code = main()
    if "tensorflow" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
