"""What only the S3 backend can get wrong: commit record, conditional writes, config."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from store_helpers import model_files

from channelmodel.store import MODEL_FILES, NotFound, StoreError, VersionExists, open_store
from channelmodel.store.s3 import S3Store
from channelmodel.store.testing import S3_TEST_ENV, create_bucket


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in S3_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHANNELMODEL_S3_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def store(s3_env: str) -> S3Store:
    store = open_store(f"s3://{create_bucket(s3_env)}/models/")
    assert isinstance(store, S3Store)
    return store


def recorded_requests(store: S3Store, operation: str) -> list[Any]:
    requests: list[Any] = []
    store.client.meta.events.register(
        f"before-send.s3.{operation}", lambda request, **_: requests.append(request)
    )
    return requests


def test_uri_parsing(s3_env: str) -> None:
    store = S3Store.from_uri("s3://bucket/a/b/")
    assert (store.bucket, store.prefix, store.uri) == ("bucket", "a/b", "s3://bucket/a/b")
    assert S3Store.from_uri("s3://bucket").prefix == ""
    for bad in ("s3://", "s3:///prefix", "s3://bucket/p?x=1"):
        with pytest.raises(StoreError):
            S3Store.from_uri(bad)


def test_endpoint_and_path_style_come_from_the_environment(store: S3Store, s3_env: str) -> None:
    puts = recorded_requests(store, "PutObject")
    store.put_blob("k", b"v")
    assert puts[0].url == f"{s3_env}/{store.bucket}/models/_cache/k"


def test_bad_addressing_style_is_refused(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELMODEL_S3_ADDRESSING_STYLE", "sideways")
    with pytest.raises(StoreError, match="ADDRESSING_STYLE"):
        S3Store.from_uri("s3://bucket/p")


def test_commit_record_is_written_last_and_lists_every_file(store: S3Store) -> None:
    puts = recorded_requests(store, "PutObject")
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)

    keys = [request.url.rsplit("/v1.0.0/", 1)[1] for request in puts]
    attempt = keys[0].split("/")[0]
    assert re.fullmatch(r"\.attempt-[0-9a-f]{32}", attempt)
    assert keys == [f"{attempt}/{name}" for name in MODEL_FILES] + [".committed"]
    assert puts[-1].headers["If-None-Match"] in ("*", b"*")
    record = json.loads(
        store.client.get_object(Bucket=store.bucket, Key="models/shop-1/v1.0.0/.committed")[
            "Body"
        ].read()
    )
    assert {name: entry["size"] for name, entry in record["files"].items()} == {
        n: len(d) for n, d in files.items()
    }
    # The record names the objects of this attempt, and only this attempt's.
    assert {name: entry["key"] for name, entry in record["files"].items()} == {
        name: f"{attempt}/{name}" for name in MODEL_FILES
    }


def test_objects_without_commit_record_are_invisible(store: S3Store) -> None:
    for name, data in model_files().items():
        store.client.put_object(Bucket=store.bucket, Key=f"models/shop-1/v1.0.0/{name}", Body=data)
    assert store.list_versions("shop-1") == []
    assert store.list_channels() == []
    with pytest.raises(NotFound):
        store.iter_file("shop-1", "1.0.0", "weights.bin")


def test_losing_a_commit_race_raises_version_exists(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = model_files(seed=1)
    store.publish_version("shop-1", "1.0.0", first)
    # The second publisher checked before the first committed: only the conditional put stops it.
    monkeypatch.setattr(store, "_exists", lambda key: False)
    with pytest.raises(VersionExists):
        store.publish_version("shop-1", "1.0.0", model_files(seed=2))
    assert store.list_versions("shop-1") == ["1.0.0"]
    # Its files went to keys of its own: the committed version still reads back whole.
    assert {n: store.read_file("shop-1", "1.0.0", n) for n in MODEL_FILES} == first
    # ... and the loser removed them again.
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="models/shop-1/v1.0.0/")
    assert len(listed["Contents"]) == len(MODEL_FILES) + 1


def test_records_from_before_attempt_keys_still_read(store: S3Store) -> None:
    from channelmodel.store.base import commit_record

    files = model_files()
    etags = {}
    for name, data in files.items():
        put = store.client.put_object(
            Bucket=store.bucket, Key=f"models/shop-1/v1.0.0/{name}", Body=data
        )
        etags[name] = {"s3ETag": put["ETag"]}
    store.client.put_object(
        Bucket=store.bucket,
        Key="models/shop-1/v1.0.0/.committed",
        Body=commit_record(files, etags),
    )
    assert {n: store.read_file("shop-1", "1.0.0", n) for n in MODEL_FILES} == files


def test_a_record_naming_a_foreign_key_is_refused(store: S3Store) -> None:
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)
    key = "models/shop-1/v1.0.0/.committed"
    record = json.loads(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    record["files"]["model.json"]["key"] = "../../other/v1.0.0/model.json"
    store.client.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(record).encode())
    with pytest.raises(StoreError, match="corrupt commit record"):
        store.read_file("shop-1", "1.0.0", "model.json")


def _committed_key(store: S3Store, version: str, name: str) -> str:
    record = json.loads(
        store.client.get_object(Bucket=store.bucket, Key=f"models/shop-1/v{version}/.committed")[
            "Body"
        ].read()
    )
    return f"models/shop-1/v{version}/{record['files'][name]['key']}"


def test_a_file_replaced_after_commit_is_refused(store: S3Store) -> None:
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)
    store.client.put_object(
        Bucket=store.bucket, Key=_committed_key(store, "1.0.0", "model.json"), Body=b'{"evil": 1}'
    )
    with pytest.raises(StoreError, match="changed after"):
        store.read_file("shop-1", "1.0.0", "model.json")
    assert store.read_file("shop-1", "1.0.0", "weights.bin") == files["weights.bin"]


def test_delete_removes_the_commit_record_first(store: S3Store) -> None:
    store.publish_version("shop-1", "1.0.0", model_files())
    deletes = recorded_requests(store, "DeleteObjects")
    store.delete_version("shop-1", "1.0.0")

    first_batch = (
        deletes[0].body.decode() if isinstance(deletes[0].body, bytes) else str(deletes[0].body)
    )
    assert "v1.0.0/.committed" in first_batch
    assert "weights.bin" not in first_batch
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="models/shop-1/")
    assert listed.get("KeyCount", 0) == 0


def test_ping_fails_for_a_missing_bucket(s3_env: str) -> None:
    with pytest.raises(StoreError, match="not reachable"):
        S3Store.from_uri("s3://no-such-bucket/p").ping()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_service_without_conditional_writes_still_commits(store: S3Store) -> None:
    # Older S3-compatible services answer 501 to If-None-Match on PutObject.
    from botocore.awsrequest import AWSResponse

    refused: list[str] = []

    def not_implemented(request: Any, **_: Any) -> AWSResponse | None:
        if "If-None-Match" not in request.headers:
            return None
        refused.append(request.url)
        body = b"<Error><Code>NotImplemented</Code><Message>conditional writes</Message></Error>"
        return AWSResponse(request.url, 501, {"Content-Type": "application/xml"}, _Raw(body))

    store.client.meta.events.register("before-send.s3.PutObject", not_implemented)
    files = model_files()
    store.publish_version("shop-1", "1.0.0", files)

    assert len(refused) == 1
    assert store.list_versions("shop-1") == ["1.0.0"]
    assert store.read_file("shop-1", "1.0.0", "weights.bin") == files["weights.bin"]
    with pytest.raises(VersionExists):
        store.publish_version("shop-1", "1.0.0", model_files())


def test_a_commit_whose_answer_is_lost_keeps_the_files_it_may_have_committed(
    store: S3Store,
) -> None:
    # The record reached S3 but the answer did not: deleting the attempt's objects
    # now would leave a committed version whose files are gone.
    from botocore.exceptions import EndpointConnectionError

    files = model_files()

    def lose_the_answer(http_response: Any, model: Any, **_: Any) -> None:
        if model.name == "PutObject" and http_response.status_code == 200:
            raise EndpointConnectionError(endpoint_url="lost")

    def commit_only(request: Any, **_: Any) -> None:
        if request.url.endswith("/.committed"):
            store.client.meta.events.register("after-call.s3.PutObject", lose_the_answer)

    store.client.meta.events.register("before-send.s3.PutObject", commit_only)
    with pytest.raises(StoreError):
        store.publish_version("shop-1", "1.0.0", files)

    assert store.list_versions("shop-1") == ["1.0.0"]
    assert {n: store.read_file("shop-1", "1.0.0", n) for n in MODEL_FILES} == files
