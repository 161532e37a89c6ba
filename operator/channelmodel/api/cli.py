"""`channelmodel crd`: print or write the generated CRD."""

from __future__ import annotations

import argparse
from pathlib import Path

from channelmodel.api.crd import render_crd_yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", type=Path, help="Write to this file instead of stdout.")
    parser.add_argument(
        "--helm-keep",
        action="store_true",
        help="Annotate helm.sh/resource-policy: keep (the channelmodel-crds chart's template).",
    )


def run(args: argparse.Namespace) -> int:
    text = render_crd_yaml(keep=args.helm_keep)
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0
