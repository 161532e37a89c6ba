"""`channelmodel train`: train one model version from a manifest and publish it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections import Counter
from datetime import datetime

from channelmodel.logs import configure_logging
from channelmodel.rfc3339 import parse_time
from channelmodel.versions import is_version
from channelmodel_trainer.errors import TrainerError
from channelmodel_trainer.pipeline import DEFAULT_VIEWS, TrainingRequest
from channelmodel_trainer.result import JobResult, failure_result, success_result, write_result
from channelmodel_trainer.train import HeadRecipe

TOKEN_ENV = "CHANNELMODEL_MANIFEST_TOKEN"
BASE_MODEL_ENV = "CHANNELMODEL_BASE_MODEL"

log = logging.getLogger("channelmodel_trainer")


def _start_importing_tensorflow() -> None:
    """TensorFlow's import (about 2 s) starts now, beside this process's other imports,
    the manifest and the cache look-ups; the base model's load waits for it (the
    import system's module lock). 0.3 s sooner from a change to the served model."""
    from channelmodel_trainer import tfcompat

    def load() -> None:
        try:
            tfcompat.tf_keras()
        except Exception as exc:  # the base model's load imports it again and says why
            log.debug("importing TensorFlow ahead failed: %s", exc)

    threading.Thread(target=load, name="import-tensorflow", daemon=True).start()


def _version(value: str) -> str:
    if not is_version(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a semantic version X.Y.Z")
    return value


def _time(value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an RFC 3339 time with an offset, e.g. 2026-12-03T10:00:00Z"
        ) from exc


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest", required=True, help="manifest URL (http/https) or local path / file:// URL"
    )
    parser.add_argument(
        "--channel", required=True, help="channel ID; must match the manifest's channelId"
    )
    parser.add_argument("--version", required=True, type=_version, help="version to publish, X.Y.Z")
    parser.add_argument(
        "--store", required=True, help="artifact store: file:///path or s3://bucket/prefix"
    )
    parser.add_argument(
        "--base-model",
        default=os.environ.get(BASE_MODEL_ENV, "imagenet"),
        help="'imagenet' (Keras weights) or a Teachable Machine / TF.js export: zip, folder or model.json",
    )
    parser.add_argument(
        "--epochs", type=_positive, default=HeadRecipe.epochs, help="head training epochs"
    )
    parser.add_argument(
        "--views",
        type=int,
        default=DEFAULT_VIEWS,
        help="augmented views per photo at embedding time (0: none)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for the validation split and the head (views are seeded by photo content)",
    )
    parser.add_argument(
        "--mode",
        choices=("Auto", "Fast", "FineTune"),
        default="Fast",
        help="Fast: head only on cached embeddings (seconds); FineTune: the quality path, the "
        "base network fine-tuned on the photos; Auto: FineTune for the triggers initial, "
        "schedule and manual, else Fast (the operator passes the spec's training.mode)",
    )
    parser.add_argument(
        "--trigger",
        default=None,
        help="what started the run (initial, event, schedule, manual, spec): read by --mode Auto",
    )
    parser.add_argument(
        "--not-before",
        type=_time,
        default=None,
        help="read the manifest no earlier than this RFC 3339 time; the base loads meanwhile "
        "(the operator starts a Job ahead of its debounce's end and passes that end)",
    )
    parser.add_argument(
        "--result-file",
        help="result JSON path (default: $CHANNELMODEL_TERMINATION_LOG or /dev/termination-log)",
    )


def run(args: argparse.Namespace) -> int:
    # The operator's setup: UTC RFC 3339 times, CHANNELMODEL_LOG_FORMAT (the Job sets it),
    # redaction, and no line per image request (httpx at WARNING).
    configure_logging()
    try:
        result = _train(args)
    except TrainerError as exc:
        result = failure_result(str(exc))
    except Exception as exc:  # an unexpected bug still ends as a one-line reason
        log.exception("training failed")
        result = failure_result(f"internal error: {exc.__class__.__name__}: {exc}")
    write_result(result, args.result_file)
    if result.ok:
        print(json.dumps(result.model_dump(mode="json", exclude_none=True), indent=2))
        return 0
    print(f"channelmodel train: {result.error}", file=sys.stderr)
    return 1


def _train(args: argparse.Namespace) -> JobResult:
    _start_importing_tensorflow()
    # Imported here: TensorFlow takes seconds to load, argument errors should not wait.
    from dataclasses import replace

    from channelmodel_trainer.notify_progress import with_webhook
    from channelmodel_trainer.pipeline import resolve_mode, run_training
    from channelmodel_trainer.progress import progress_for
    from channelmodel_trainer.publish import open_artifact_store

    store = open_artifact_store(args.store)
    request = TrainingRequest(
        manifest=args.manifest,
        channel_id=args.channel,
        version=args.version,
        base_model=args.base_model,
        recipe=replace(HeadRecipe(), epochs=args.epochs, seed=args.seed),
        views=max(0, args.views),
        token=os.environ.get(TOKEN_ENV) or None,
        mode=resolve_mode(args.mode, args.trigger),
        not_before=args.not_before,
    )
    log.info("training %s v%s on the %s path", args.channel, args.version, request.mode)
    progress = with_webhook(progress_for(), args.channel, args.version)
    try:
        outcome = run_training(request, store, progress)
    finally:
        progress.close()
    return success_result(
        channel_id=outcome.channel_id,
        version=outcome.version,
        metrics=outcome.metrics,
        skipped=outcome.skipped,
        timings=outcome.timings,
        without_images=outcome.products_without_images,
        embedded=outcome.embedded,
        cache_hits=outcome.cache_hits,
        # why images were skipped, most frequent first (bounded for the 4 KiB limit)
        skip_reasons=dict(Counter(outcome.skip_reasons).most_common(8)),
    )
