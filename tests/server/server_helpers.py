"""Helpers for server tests: model content, raw HTTP, metric samples."""

from __future__ import annotations

import asyncio
import os

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "/assets/ml-models"


def model_files(weights_size: int = 4096, seed: int = 0) -> dict[str, bytes]:
    return {
        "model.json": f'{{"format": "layers-model", "seed": {seed}}}'.encode(),
        "weights.bin": os.urandom(weights_size),
        "metadata.json": f'{{"labels": ["p-{seed}"]}}'.encode(),
    }


async def raw_get(host: str, port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """Send a request line exactly as given (no client-side normalisation); status and body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from a Prometheus text exposition."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples
