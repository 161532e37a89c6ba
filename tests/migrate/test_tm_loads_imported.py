"""The imported version, fetched from the model server, runs in the Teachable
Machine library exactly like the original export: same labels, same predictions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from channelmodel.server import create_app
from channelmodel.store import ArtifactStore
from tests.migrate.conftest import REPO_ROOT, Importer, shard_export
from tests.migrate.httpserve import serve_app, serve_folder

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("compare_tm.js")
TM_MODULES = REPO_ROOT / "tests" / "js" / "tm" / "node_modules"


def run_tm(*base_urls: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/setup.sh installs it)")
    if not (TM_MODULES / "@teachablemachine" / "image").is_dir():
        pytest.skip(f"{TM_MODULES} lacks @teachablemachine/image: run npm ci in tests/js/tm")
    completed = subprocess.run(
        [node, str(SCRIPT), *base_urls],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TM_NODE_MODULES": str(TM_MODULES)},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    # TF.js prints a banner on stdout: the result is the JSON line.
    line = next(line for line in reversed(completed.stdout.splitlines()) if line.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    return result


@pytest.mark.parametrize("source", ["zip", "folder", "sharded-folder"])
def test_imported_version_predicts_like_the_original(
    source: str,
    reference_zip: Path,
    reference_dir: Path,
    export_copy: Path,
    run_import: Importer,
    store: ArtifactStore,
) -> None:
    if source == "sharded-folder":
        shard_export(export_copy)  # published as one weights.bin: must still load the same
    paths = {"zip": reference_zip, "folder": reference_dir, "sharded-folder": export_copy}
    run = run_import(str(paths[source]))
    assert run.code == 0, run.stderr
    version = run.result["version"]

    with (
        serve_folder(reference_dir) as (original_url, _),
        serve_app(create_app(store)) as server_url,
    ):
        imported_url = f"{server_url}/assets/ml-models/shop-1/v{version}/"
        result = run_tm(original_url, imported_url)

    assert result["tfjsVersion"] == "1.3.1"
    original, imported = result["models"]
    assert imported["labels"] == original["labels"] == ["Class 1", "Class 2"]
    assert imported["totalClasses"] == 2
    assert imported["outputShape"] == original["outputShape"] == [4, 2]
    expected = np.array(original["probabilities"])
    actual = np.array(imported["probabilities"])
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)  # real softmax outputs
    assert not np.allclose(expected, expected[0])  # the inputs make a difference
    np.testing.assert_array_equal(actual, expected)
