"""Render the Helm chart in tests: locate helm, run `helm template`, pick objects.

Also used by other test suites that need the chart's view of the operator,
e.g. `rendered_operator_environment()` to start the operator against the
emulator with exactly the env the chart gives it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "channelmodel"
CRD_FILE = REPO_ROOT / "deploy" / "crds" / "channelmodels.ml.dukarun.io.yaml"
RELEASE = "shop"
NAMESPACE = "models"

Manifest = dict[str, Any]


def helm_binary() -> str:
    """The helm scripts/setup.sh installs, else the one on PATH; skips the test if neither."""
    local = REPO_ROOT / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("helm")
    if found is None:
        pytest.skip("helm not installed: run scripts/setup.sh")
    return found


@dataclass(frozen=True)
class Values:
    """A values case: `--set`-style overrides kept as a nested mapping."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def write(self, directory: Path) -> Path:
        path = directory / f"values-{self.name}.yaml"
        path.write_text(yaml.safe_dump(dict(self.overrides)))
        return path


def run_helm(args: Iterable[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "HELM_CACHE_HOME": "/tmp/helm-cache",
            "HELM_CONFIG_HOME": "/tmp/helm-config",
        },
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


def template_args(
    values_file: Path | None, *, namespace: str = NAMESPACE, chart: Path = CHART_DIR
) -> list[str]:
    args = ["template", RELEASE, str(chart), "--namespace", namespace, "--include-crds"]
    if values_file is not None:
        args += ["--values", str(values_file)]
    return args


def render(values: Values | None, tmp_path: Path, *, namespace: str = NAMESPACE) -> list[Manifest]:
    """All objects `helm template` renders (CRDs included) for these values."""
    values_file = values.write(tmp_path) if values is not None else None
    output = run_helm(template_args(values_file, namespace=namespace)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def render_error(values: Values, tmp_path: Path) -> str:
    """helm's error output for values that must be refused (fails the test if accepted)."""
    result = run_helm(template_args(values.write(tmp_path)), check=False)
    assert result.returncode != 0, f"helm accepted bad values {values.overrides}"
    return result.stderr


def assert_refused(overrides: Mapping[str, Any], messages: list[str], tmp_path: Path) -> None:
    """helm refuses these values, and its error says each of `messages`."""
    error = render_error(Values("bad", overrides), tmp_path)
    for message in messages:
        assert message in error, f"{message!r} not in helm's error:\n{error}"


def select(objects: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def only(objects: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = select(objects, kind, name)
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    )
    return found[0]


def deployment(objects: Iterable[Manifest], component: str) -> Manifest:
    found = [
        obj
        for obj in select(objects, "Deployment")
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment"
    return found[0]


def container(deploy: Manifest) -> dict[str, Any]:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


OPERATOR_POD_NAME = "shop-channelmodel-operator-5d9c7-x2x4q"


def plain_env(container_spec: Mapping[str, Any], namespace: str = NAMESPACE) -> dict[str, str]:
    """The container's literal env values; secret references become a placeholder, and
    the downward API's Pod fields what a Pod in `namespace` would get."""
    fields = {"metadata.namespace": namespace, "metadata.name": OPERATOR_POD_NAME}
    env: dict[str, str] = {}
    for item in container_spec.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"<secret {ref['name']}/{ref['key']}>"
    return env


def rendered_operator_environment(
    overrides: Mapping[str, Any] | None, tmp_path: Path, *, namespace: str = NAMESPACE
) -> tuple[list[str], dict[str, str]]:
    """Command line and env of the operator container as the chart renders them."""
    objects = render(Values("operator-env", overrides or {}), tmp_path, namespace=namespace)
    spec = container(deployment(objects, "operator"))
    return [*spec["command"], *spec.get("args", [])], plain_env(spec, namespace)


def rendered_notes(overrides: Mapping[str, Any], tmp_path: Path) -> str:
    """NOTES.txt as `helm install` would print it (helm template does not render it)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes_probe.tpl").write_text(
        '{{- define "probe.notes" -}}\n' + notes + "{{- end -}}\n"
    )
    (chart / "templates" / "notes-probe.yaml").write_text(
        'kind: NotesProbe\ntext: {{ include "probe.notes" . | toJson }}\n'
    )
    values_file = Values("notes", overrides).write(tmp_path)
    output = run_helm(
        [*template_args(values_file, chart=chart), "--show-only", "templates/notes-probe.yaml"]
    ).stdout
    return str(yaml.safe_load(output)["text"])


@dataclass(frozen=True)
class MountedSecretKey:
    """A file in a container that is one key of a Secret volume."""

    secret: str
    key: str
    mount_path: PurePosixPath  # where the volume is mounted
    relative: PurePosixPath  # the file inside the mount
    mode: int | None


def mounted_secret_key(pod: Mapping[str, Any], file: str) -> MountedSecretKey | None:
    """Which Secret key the first container sees at `file`, or None if no Secret volume holds it."""
    path = PurePosixPath(file)
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in pod["containers"][0].get("volumeMounts", []):
        mount_path = PurePosixPath(mount["mountPath"])
        secret = volumes[mount["name"]].get("secret")
        if secret is None or "subPath" in mount or not path.is_relative_to(mount_path):
            continue
        relative = path.relative_to(mount_path)
        items = secret.get("items")
        keys = {item["path"]: item["key"] for item in items} if items else None
        key = keys.get(str(relative)) if keys is not None else str(relative)
        if key is not None:
            return MountedSecretKey(
                secret["secretName"], key, mount_path, relative, secret.get("defaultMode")
            )
    return None
