"""The few Kubernetes API calls the handlers make, through the official client.

The client is synchronous; every call runs in a worker thread so kopf's event
loop keeps serving other channels. Objects come back as plain dicts with the
API's own (camelCase) field names.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from channelmodel.api.models import GROUP, PLURAL, VERSION


def load_client_config(pool_size: int | None = None) -> None:
    """In-cluster config in a Pod, else the kubeconfig (KUBECONFIG or ~/.kube/config).

    `pool_size` sizes the connection pool for that many requests in flight (the
    client's default follows the CPU count, too few for a fleet's rush).
    """
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    if pool_size is not None:
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = pool_size
        client.Configuration.set_default(configuration)


USER_AGENT = "channelmodel-operator"

# Seconds between attempts to reach an API server that is down (the last one repeats).
API_WAIT_BACKOFF = (1.0, 2.0, 5.0, 10.0)
# Objects per list request (the start-up lists, kopf's initial list): memory, not speed.
LIST_PAGE_SIZE = 500


def wait_for_api_server(
    logger: logging.Logger,
    *,
    sleep: Callable[[float], None] = time.sleep,
    api_client: client.ApiClient | None = None,
    attempts: int | None = None,
) -> None:
    """Block until the API server answers /version (forever, unless `attempts` is given).

    kopf gives up on discovering resources after its last network retry and never
    tries again; an operator that starts while the API server is away must wait here.
    """
    version_api = client.VersionApi(api_client)
    attempt = 0
    while True:
        try:
            version_api.get_code()
            if attempt:
                logger.info("the API server answers again")
            return
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            if attempts is not None and attempt + 1 >= attempts:
                raise
            delay = API_WAIT_BACKOFF[min(attempt, len(API_WAIT_BACKOFF) - 1)]
            reason = (
                f"HTTP {error.status}" if isinstance(error, ApiException) else type(error).__name__
            )
            logger.warning("the API server does not answer (%s); retrying in %.0f s", reason, delay)
            attempt += 1
            sleep(delay)


def _discard(response: object) -> None:
    """Read an answer asked for with `_preload_content=False` to its end without decoding
    it, so that its connection goes back to the pool."""
    cast(urllib3.HTTPResponse, response).drain_conn()


@dataclass(frozen=True)
class SecretView:
    annotations: dict[str, str]
    data: dict[str, bytes] = field(repr=False)  # never printed


class KubeApi:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._api = api_client or client.ApiClient()
        # Audit logs and API priority rules tell the operator's requests apart by it.
        self._api.user_agent = USER_AGENT
        self._batch = client.BatchV1Api(self._api)
        self._core = client.CoreV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    def _plain(self, obj: Any) -> Any:
        return self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    async def create_job(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create a Job; False when it exists already (a restarted operator adopts it)."""
        try:
            # The answer is not read: decoding it into the client's models costs the
            # GIL about 2 ms per Job, on the path of every start.
            response = await asyncio.to_thread(
                self._batch.create_namespaced_job,
                namespace,
                dict(body),  # type: ignore[arg-type]
                _preload_content=False,
            )
            _discard(response)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = await asyncio.to_thread(self._batch.read_namespaced_job, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(self._plain(job))

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        pods = await asyncio.to_thread(
            self._core.list_namespaced_pod, namespace, label_selector=label_selector
        )
        return list(self._plain(pods).get("items") or [])

    async def delete_jobs(self, namespace: str, label_selector: str) -> list[str]:
        jobs = await asyncio.to_thread(
            self._batch.list_namespaced_job, namespace, label_selector=label_selector
        )
        names = [str(job.metadata.name) for job in jobs.items if job.metadata]
        for name in names:
            try:
                await asyncio.to_thread(
                    self._batch.delete_namespaced_job,
                    name,
                    namespace,
                    propagation_policy="Background",
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return names

    async def patch_channel_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> bool:
        """Merge-patch a ChannelModel's status (None deletes a field); False when it is gone."""
        try:
            response = await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object_status,
                GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)},
                _content_type="application/merge-patch+json", _preload_content=False,
            )  # fmt: skip
            _discard(response)  # the watch brings the object back
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def list_fleet(
        self,
        namespaces: list[str],
        label_selector: str,
        consume: Callable[[str, list[dict[str, Any]]], None],
    ) -> None:
        """Hand ChannelModels ("channel"), and Jobs ("job") and Pods ("pod") matching
        `label_selector`, in `namespaces` (all when empty), page by page to `consume`:
        what the fleet index starts from, without holding ten thousand objects at once."""

        def pages(kind: str, list_call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
            token = None
            while True:
                response = list_call(
                    *args, limit=LIST_PAGE_SIZE, _continue=token, _preload_content=False, **kwargs
                )
                page = json.loads(response.data)
                consume(kind, page.get("items") or [])
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    return

        def everything() -> None:
            if not namespaces:
                pages("channel", self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
                pages("job", self._batch.list_job_for_all_namespaces, label_selector=label_selector)
                pages("pod", self._core.list_pod_for_all_namespaces, label_selector=label_selector)
            for namespace in namespaces:
                pages(
                    "channel", self._custom.list_namespaced_custom_object,
                    GROUP, VERSION, namespace, PLURAL,
                )  # fmt: skip
                pages(
                    "job", self._batch.list_namespaced_job, namespace, label_selector=label_selector
                )
                pages(
                    "pod", self._core.list_namespaced_pod, namespace, label_selector=label_selector
                )

        await asyncio.to_thread(everything)

    async def read_secret(self, namespace: str, name: str) -> SecretView | str:
        """A Secret's annotations and values, or why it cannot be read.

        The values are for in-process use only (HMAC keys): never logged or returned.
        """
        try:
            secret = await asyncio.to_thread(self._core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return f"Secret {namespace}/{name} not found"
            if exc.status == 403:
                return f"Secret {namespace}/{name} is not readable by the operator"
            raise
        meta = secret.metadata
        return SecretView(
            annotations=dict((meta.annotations if meta else None) or {}),
            data={key: base64.b64decode(value) for key, value in (secret.data or {}).items()},
        )
