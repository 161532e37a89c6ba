"""The `channelmodel` command.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their subcommand runs, so
the operator image never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

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
    "retrain": ("channelmodel.commands.retrain", "Request a manual retrain of a ChannelModel."),
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
        prog="channelmodel", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in available_subcommands().items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (it may need TensorFlow).
        if name in argv:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list[:1])
    args = parser.parse_args(args_list)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
