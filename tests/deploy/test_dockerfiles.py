"""Dockerfile.operator and Dockerfile.trainer: what they copy, who they run as,
what they install; built for real where a docker engine and base image exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from docker.utils.build import exclude_paths

from tests.deploy.chart_render import CHART_DIR, REPO_ROOT
from tests.deploy.dockerfiles import DOCKERFILES, Dockerfile, copy_sources, parse, pyproject

NUMERIC_NON_ROOT = re.compile(r"^[1-9][0-9]*(:[0-9]+)?$")
TENSORFLOW_PACKAGES = re.compile(
    r"^(tensorflow|tf-keras|tf_keras|tensorflowjs|tensorflow-cpu)\b", re.IGNORECASE
)


@pytest.fixture(params=sorted(DOCKERFILES), ids=sorted(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse(DOCKERFILES[request.param])


def test_multi_stage_with_base_images_as_build_args(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    stage_names = {s.name for s in dockerfile.stages if s.name}
    for stage in dockerfile.stages:
        if stage.base in stage_names:
            continue
        arg = re.fullmatch(r"\$\{(\w+)\}", stage.base)
        assert arg, f"{dockerfile.path.name}: FROM {stage.base} is not a build arg"
        assert dockerfile.global_args.get(arg.group(1)), f"build arg {arg.group(1)} has no default"


def test_copies_what_the_package_build_needs(dockerfile: Dockerfile) -> None:
    project = pyproject()
    needed = {
        "pyproject.toml",
        project["project"]["readme"],
        *project["tool"]["setuptools"]["packages"]["find"]["where"],
    }
    build_stage = dockerfile.stages[0]
    assert needed <= copy_sources(build_stage), (
        f"{dockerfile.path.name} misses {needed - copy_sources(build_stage)}"
    )
    # The runtime stage takes the installed venv, never the sources.
    assert copy_sources(dockerfile.final) == set()


def test_build_context_holds_the_sources_and_nothing_heavy() -> None:
    patterns = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    included = exclude_paths(str(REPO_ROOT), patterns)
    python_sources = {
        str(path.relative_to(REPO_ROOT))
        for root in ("operator", "trainer")
        for path in (REPO_ROOT / root).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert python_sources, "no sources found"
    assert python_sources <= included, (
        f"excluded from the build context: {sorted(python_sources - included)[:5]}"
    )
    assert "pyproject.toml" in included
    for heavy in (".venv", ".git", ".tools", "tests", "node_modules", "deploy"):
        assert not any(p == heavy or p.startswith(heavy + "/") for p in included), (
            f"{heavy} is in the build context"
        )


def test_runs_as_the_charts_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    user = dockerfile.final.user
    assert user is not None, f"{dockerfile.path.name} has no USER"
    assert NUMERIC_NON_ROOT.fullmatch(user), f"{dockerfile.path.name}: USER {user!r}"
    uid, _, gid = user.partition(":")
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["securityContext"]
    assert int(uid) == values["runAsUser"]
    assert int(gid) == values["runAsGroup"]


def test_operator_image_never_installs_tensorflow_or_the_trainer_extra() -> None:
    operator = parse(DOCKERFILES["operator"])
    installs = operator.pip_installs()
    assert installs, "Dockerfile.operator installs nothing"
    for args in installs:
        for arg in args:
            assert not TENSORFLOW_PACKAGES.match(arg), f"operator image installs {arg}"
            assert "[" not in arg, f"operator image installs an extra: {arg}"
        assert "-r" not in args


def test_trainer_installs_tensorflow_the_way_setup_sh_does() -> None:
    trainer = parse(DOCKERFILES["trainer"])
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    no_deps = re.search(r"install -q --no-deps (.+)$", setup, re.MULTILINE)
    assert no_deps, "scripts/setup.sh no longer installs tf-keras/tensorflowjs with --no-deps"
    assert ["--no-deps", *no_deps.group(1).split()] in trainer.pip_installs()
    # The TensorFlow version matches the one the trainer extra is tested with.
    extra = pyproject()["project"]["optional-dependencies"]["trainer"]
    tested = next(re.search(r"==([\d.]+)", r).group(1) for r in extra if r.startswith("tensorflow"))  # type: ignore[union-attr]
    requirement = next(
        v for v in trainer.stages[0].values("ARG") if v.startswith("TENSORFLOW_REQUIREMENT=")
    )
    assert requirement.endswith(f'=={tested}"'), requirement


def test_trainer_bakes_imagenet_weights_for_its_user() -> None:
    trainer = parse(DOCKERFILES["trainer"])
    user = trainer.final.user
    downloads = [
        (stage, script)
        for stage in trainer.stages
        for script in stage.values("RUN")
        if "MobileNetV2(" in script
        and "alpha=0.35" in script
        and "include_top=False" in script
        and "weights='imagenet'" in script
    ]
    fetch_stage = downloads[0][0]
    assert fetch_stage is not trainer.final
    assert fetch_stage.user == user, "weights must be fetched as the runtime user"
    copies = [v for v in trainer.final.values("COPY") if f"--from={fetch_stage.name}" in v]
    assert copies
    assert all(f"--chown={user}" in v for v in copies)
    # The final stage loads them again with downloads made impossible.
    assert any(stage is trainer.final and "127.0.0.1:9" in script for stage, script in downloads)


@pytest.mark.slow
def test_baked_weights_path_is_where_tf_keras_looks() -> None:
    """CHANNELMODEL_IMAGENET_WEIGHTS names the file tf_keras fetches for MobileNetV2 0.35/224 no-top."""
    from channelmodel_trainer import tfcompat

    keras = tfcompat.tf_keras()
    from tf_keras.src.utils import data_utils

    requested: list[tuple[str, str | None]] = []

    class Requested(Exception):
        pass

    def fake_get_file(fname: str, origin: str, cache_subdir: str = "datasets", **_: object) -> str:
        requested.append((fname, cache_subdir))
        raise Requested

    original = data_utils.get_file
    data_utils.get_file = fake_get_file
    try:
        with pytest.raises(Requested):
            keras.applications.MobileNetV2(
                input_shape=(224, 224, 3), alpha=0.35, include_top=False, weights="imagenet"
            )
    finally:
        data_utils.get_file = original
    ((fname, subdir),) = requested
    trainer = parse(DOCKERFILES["trainer"])
    env = " ".join(trainer.final.values("ENV"))
    home = re.search(r"HOME=(\S+)", env).group(1)  # type: ignore[union-attr]
    assert f"CHANNELMODEL_IMAGENET_WEIGHTS={home}/.keras/{subdir}/{fname}" in env


# --- real builds: only where a docker engine and the base image exist ---------


def docker_or_skip(base_image: str) -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on PATH")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no docker engine: `docker info` failed: {reason}")
    present = subprocess.run(
        [docker, "image", "inspect", base_image], capture_output=True, timeout=60
    )
    if present.returncode != 0:
        pytest.skip(
            f"base image {base_image} is not available to the docker engine (no registry here): "
            "pull it, or set CHANNELMODEL_DOCKER_BASE_IMAGE to a local python3.11 image"
        )
    return docker


def weights_host_or_skip() -> None:
    """The trainer build downloads Keras' ImageNet weights: skip where their host is unreachable."""
    from tf_keras.src.applications.mobilenet_v2 import BASE_WEIGHT_PATH

    try:
        urllib.request.urlopen(urllib.request.Request(BASE_WEIGHT_PATH, method="HEAD"), timeout=10)
    except urllib.error.HTTPError:
        pass  # the host answers: the build can download
    except OSError as error:
        pytest.skip(
            f"the trainer build downloads ImageNet weights from {BASE_WEIGHT_PATH}: unreachable ({error})"
        )


def build(
    docker: str, dockerfile: str, tag: str, build_args: dict[str, str], target: str | None = None
) -> None:
    args = [docker, "build", "-f", dockerfile, "-t", tag, *(["--target", target] if target else [])]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    result = subprocess.run([*args, str(REPO_ROOT)], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, (
        f"docker build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


def run(docker: str, *args: str) -> str:
    result = subprocess.run(
        [docker, "run", "--rm", *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def base_image(dockerfile: Dockerfile) -> str:
    return os.environ.get("CHANNELMODEL_DOCKER_BASE_IMAGE") or dockerfile.global_args["BASE_IMAGE"]


@pytest.mark.slow
def test_operator_image_builds_and_runs_read_only_as_non_root() -> None:
    dockerfile = parse(DOCKERFILES["operator"])
    docker = docker_or_skip(base_image(dockerfile))
    tag = "channelmodel-operator:test"
    build(docker, "Dockerfile.operator", tag, {"BASE_IMAGE": base_image(dockerfile)})
    assert run(docker, "--entrypoint", "id", tag, "-u") == dockerfile.final.user.split(":")[0]  # type: ignore[union-attr]
    run(docker, "--read-only", "--tmpfs", "/tmp", tag, "--help")
    probe = "import importlib.util as u, kopf, channelmodel.settings; print(u.find_spec('tensorflow') is None)"
    assert run(docker, "--read-only", "--entrypoint", "python3", tag, "-c", probe) == "True"


@pytest.mark.slow
def test_trainer_build_stage_has_tensorflow_tfjs_and_the_trainer() -> None:
    """Up to the weights download: TensorFlow, tf_keras, tensorflowjs and the trainer import."""
    dockerfile = parse(DOCKERFILES["trainer"])
    docker = docker_or_skip(base_image(dockerfile))
    tag = "channelmodel-trainer:test-build-stage"
    build_args = {
        "BASE_IMAGE": base_image(dockerfile),
        "TENSORFLOW_REQUIREMENT": "tensorflow-cpu==2.21.0",
    }
    build(docker, "Dockerfile.trainer", tag, build_args, target="build")
    probe = (
        "from channelmodel_trainer import tfcompat; k = tfcompat.tf_keras(); t = tfcompat.tensorflowjs(); "
        "m = k.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=0.35, include_top=False, weights=None); "
        "print(k.__version__, t.__version__, m.output_shape)"
    )
    assert (
        run(docker, "--entrypoint", "python3", tag, "-c", probe).splitlines()[-1]
        == "2.21.0 4.22.0 (None, 7, 7, 1280)"
    )
    assert "--manifest" in run(docker, tag, "channelmodel", "train", "--help")


@pytest.mark.slow
def test_trainer_image_builds_with_weights_usable_offline() -> None:
    dockerfile = parse(DOCKERFILES["trainer"])
    docker = docker_or_skip(base_image(dockerfile))
    weights_host_or_skip()
    tag = "channelmodel-trainer:test-cpu"
    build(
        docker,
        "Dockerfile.trainer",
        tag,
        {"BASE_IMAGE": base_image(dockerfile), "TENSORFLOW_REQUIREMENT": "tensorflow-cpu==2.21.0"},
    )
    assert run(docker, "--entrypoint", "id", tag, "-u") == dockerfile.final.user.split(":")[0]  # type: ignore[union-attr]
    load = (
        "import tf_keras; m = tf_keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=0.35, "
        "include_top=False, weights='imagenet'); print(m.output_shape)"
    )
    assert (
        run(docker, "--network", "none", "--entrypoint", "python3", tag, "-c", load)
        == "(None, 7, 7, 1280)"
    )
    assert "--manifest" in run(docker, tag, "train", "--help")


def test_docker_skip_reason_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Here (no engine) the build tests must skip saying why, never pass silently."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match="no docker CLI"):
        docker_or_skip("python:3.11-slim-bookworm")


def test_training_jobs_run_as_the_trainer_images_user() -> None:
    """The operator's Job pins runAsUser: it must own the baked ~/.keras of the image."""
    from channelmodel.settings import TRAINER_UID

    user = parse(DOCKERFILES["trainer"]).final.user
    assert user is not None
    assert str(TRAINER_UID) == user.split(":")[0], (
        f"training Jobs run as {TRAINER_UID}, Dockerfile.trainer's USER is {user}"
    )


def test_the_images_carry_no_sandbox_or_test_double(dockerfile: Dockerfile) -> None:
    # The emulator, job runner and process kubelet live in sandbox/ (channelmodel-sandbox);
    # what only tests and `channelmodel dev` use never reaches an image.
    copied = copy_sources(dockerfile.stages[0]) | copy_sources(dockerfile.stages[-1])
    assert not [path for path in copied if path.strip("/").split("/")[0] in ("sandbox", "tests")]
    assert not (REPO_ROOT / "operator" / "channelmodel" / "sandbox").exists()
    assert "sandbox" not in str(pyproject()["tool"]["setuptools"]["packages"]["find"])


CONSTRAINTS = REPO_ROOT / "constraints.txt"


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_every_runtime_dependency() -> None:
    pins = _constraints()
    for requirement in pyproject()["project"]["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", requirement)[0]).lower()
        assert name in pins, f"constraints.txt does not pin {name}"
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    installs = [line for line in setup.splitlines() if '"$PIP" install' in line]
    resolving = [
        line for line in installs if "--no-deps" not in line and "--upgrade pip" not in line
    ]
    assert resolving and all("-c constraints.txt" in line for line in resolving), (
        "CI (scripts/setup.sh) must install with the same constraints as the images"
    )


def test_images_install_python_packages_from_the_constraints(dockerfile: Dockerfile) -> None:
    build = dockerfile.stages[0]
    assert "constraints.txt" in copy_sources(build)
    for args in dockerfile.pip_installs():
        if "--no-deps" in args and all("==" in a for a in args if not a.startswith("-")):
            continue  # exact pins without dependencies: nothing left to resolve
        assert args[:2] == ["-c", "constraints.txt"], f"{dockerfile.path.name}: pip install {args}"


def test_images_carry_oci_labels(dockerfile: Dockerfile) -> None:
    labels = " ".join(dockerfile.final.values("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses",
                "base.name"):  # fmt: skip
        assert f"org.opencontainers.image.{key}=" in labels, f"{dockerfile.path.name}: {key}"
    license_ = pyproject()["project"]["license"]
    assert f'org.opencontainers.image.licenses="{license_}"' in labels
    title = re.search(r'org\.opencontainers\.image\.title="([^"]+)"', labels)
    assert title and title.group(1) == f"channelmodel-{dockerfile.path.suffix.lstrip('.')}"


def test_base_images_are_pinnable_and_architectures_stated(dockerfile: Dockerfile) -> None:
    base = dockerfile.global_args["BASE_IMAGE"]
    name, _, digest = base.partition("@")
    assert ":" in name, f"{base}: a base image keeps its tag, also when pinned by digest"
    if digest:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), base
    text = dockerfile.path.read_text()
    assert "@sha256:<digest>" in text, "the Dockerfile says how to pin the base by digest"
    assert "linux/amd64" in text and "linux/arm64" in text, "say which architectures build"


def test_pin_script_pins_the_base_by_index_digest_keeping_the_tag(tmp_path: Path) -> None:
    """scripts/pin-base-images.sh with a stand-in `docker` that answers like buildx."""
    digest = "sha256:" + "0123456789abcdef" * 4
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text(f'#!/bin/sh\necho \'{{"digest": "{digest}", "mediaType": "x"}}\'\n')
    docker.chmod(0o755)
    copy = tmp_path / "Dockerfile.operator"
    copy.write_text(DOCKERFILES["operator"].read_text())
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    for _ in range(2):  # re-running re-pins from the tag
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "pin-base-images.sh"), str(copy)],
            check=True, env=env, capture_output=True, timeout=30,
        )  # fmt: skip
    pinned = parse(copy).global_args["BASE_IMAGE"]
    assert pinned == f"python:3.11-slim-bookworm@{digest}"
