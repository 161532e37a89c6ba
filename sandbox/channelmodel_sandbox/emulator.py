"""A Kubernetes API server emulator: kmock's `KubernetesEmulator` with the gaps closed.

kmock gives the HTTP server, request parsing into a request log, its DSL for
injecting reactions (`emulator["patch", kmock.resource(...)] << 500` still wins
over the emulated API) and a discovery snapshot of built-in resources. This
subclass replaces kmock's object handling with API-server semantics:

* metadata: uid, a global resourceVersion bumped on every write, generation
  (bumped on spec changes and on deletion, never on status/metadata-only
  writes), creationTimestamp, generateName;
* 201 on create, 409 AlreadyExists, 409 Conflict on a stale resourceVersion
  (PUT, merge patch or `preconditions`), 422 when a JSON-patch `test` fails;
* status subresources: `/status` writes change only status, main-resource
  writes keep status, create drops it;
* CRDs: creating one registers its resources for discovery and CRUD, with
  admission against the openAPIV3Schema (pruning, defaults, jsonschema
  validation, `self == oldSelf`) and Table output from the printer columns;
* finalizers and deletionTimestamp; ownerReference garbage collection
  (background or orphan); namespace deletion removes the namespace's objects;
* label and field selectors on list and watch; watch resumes from a
  resourceVersion (410 Gone when too old), timeoutSeconds, bookmarks,
  `sendInitialEvents`; JSON content type on watch streams;
* discovery for `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`.

State lives in the event loop's thread; every mutation is synchronous, so each
request is atomic without locks.
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import logging
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock

from channelmodel_sandbox import discovery, patching, tables
from channelmodel_sandbox.apierrors import ApiError, already_exists, conflict, invalid, not_found
from channelmodel_sandbox.containers import now_rfc3339
from channelmodel_sandbox.requests import ApiPath, RequestRecord, parse_api_path, verb_of
from channelmodel_sandbox.resources import Registry, ResourceType, builtin_types, crd_types
from channelmodel_sandbox.schema import FieldError, unsupported_rules
from channelmodel_sandbox.selectors import SelectorError, object_matcher
from channelmodel_sandbox.watching import WatchHub

logger = logging.getLogger(__name__)

CRD_KEY = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACE_KEY = ("", "v1", "namespaces")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

ObjectKey = tuple[str | None, str]  # (namespace, name)
Obj = dict[str, Any]


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _body_without(obj: Mapping[str, Any], keys: Iterable[str]) -> Obj:
    skip = set(keys)
    return {key: value for key, value in obj.items() if key not in skip}


@attrs.define(kw_only=True)
class KubernetesAPIEmulator(kmock.KubernetesEmulator):
    """The emulated API server. Serve it with `kmock.Server(emulator)` or `EmulatorThread`."""

    auto_create_namespaces: bool = True
    # Bounds keep a long `channelmodel dev` session's memory flat.
    event_history: int = 20_000  # writes a watch can resume across
    request_log_limit: int = 100_000  # RequestRecords for counting
    kmock_request_limit: int = 5_000  # full kmock.Request objects for its DSL assertions

    _registry: Registry = attrs.field(factory=Registry, init=False)
    _store: dict[tuple[str, str, str], dict[ObjectKey, Obj]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False
    )
    _uids: dict[str, tuple[tuple[str, str, str], ObjectKey]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _hub: WatchHub = attrs.field(init=False)
    request_log: collections.deque[RequestRecord] = attrs.field(init=False)
    requests_served: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        # kmock's own fallbacks (its simplistic object store) are deliberately not registered:
        # everything not caught by a user-defined reaction goes to `_serve`.
        self._hub = WatchHub(self.event_history)
        self.request_log = collections.deque(maxlen=self.request_log_limit)
        for rtype in builtin_types():
            self._registry.add(rtype)
        for namespace in DEFAULT_NAMESPACES:
            self._ensure_namespace(namespace)

    # ------------------------------------------------------------------ public, in-loop API

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def resource_version(self) -> int:
        return self._rv

    def resource_type(self, api_version: str, kind_or_plural: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        rtype = self._registry.get(group, version, kind_or_plural) or self._registry.by_kind(
            api_version, kind_or_plural
        )
        if rtype is None:
            raise KeyError(f"no resource {kind_or_plural!r} in {api_version!r}")
        return rtype

    def get_object(
        self, api_version: str, kind_or_plural: str, namespace: str | None, name: str
    ) -> Obj | None:
        """The stored object, or None. Call on the emulator's event loop thread."""
        rtype = self.resource_type(api_version, kind_or_plural)
        obj = self._store[rtype.key].get((namespace if rtype.namespaced else None, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(
        self, api_version: str, kind_or_plural: str, namespace: str | None = None
    ) -> list[Obj]:
        rtype = self.resource_type(api_version, kind_or_plural)
        return [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(
                self._store[rtype.key].items(), key=lambda item: (item[0][0] or "", item[0][1])
            )
            if namespace is None or ns == namespace
        ]

    def apply_object(self, obj: Mapping[str, Any]) -> Obj:
        """Create the object, or replace its spec-side if it exists (like `kubectl apply`)."""
        rtype = self.resource_type(str(obj.get("apiVersion")), str(obj.get("kind")))
        meta = _meta(obj)
        namespace = (meta.get("namespace") or "default") if rtype.namespaced else None
        existing = self._store[rtype.key].get((namespace, meta.get("name", "")))
        if existing is None:
            return self.create_object(rtype, namespace, dict(obj))
        merged = copy.deepcopy(dict(obj))
        merged.setdefault("metadata", {})["resourceVersion"] = existing["metadata"][
            "resourceVersion"
        ]
        return self.update_object(rtype, namespace, meta["name"], merged, subresource=None)

    def count_requests(
        self,
        *,
        verbs: Iterable[str] | None = None,
        resource: str | None = None,
        user_agent: str | None = None,
        since: int = 0,
    ) -> int:
        """Requests since the mark `since` (see `requests_served`), by verb, resource, User-Agent."""
        wanted = set(verbs) if verbs is not None else None
        return sum(
            1
            for record in self.request_log
            if record.seq >= since
            and (wanted is None or record.verb in wanted)
            and (resource is None or record.resource == resource)
            and (user_agent is None or user_agent in record.user_agent)
        )

    def requests_by_method(self, *, since: int = 0) -> dict[str, int]:
        return dict(
            collections.Counter(record.method for record in self.request_log if record.seq >= since)
        )

    # ------------------------------------------------------------------ HTTP entry point

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        api = parse_api_path(raw_request.path)
        watch = raw_request.query.get("watch") in ("true", "1")
        verb = verb_of(raw_request.method, api, watch) if api and api.plural else None
        resource_name = None
        if api and api.plural:
            resource_name = f"{api.plural}.{api.group}" if api.group else api.plural
            if api.subresource:
                resource_name += f"/{api.subresource}"
        record = RequestRecord(
            seq=self.requests_served,
            method=raw_request.method,
            path=raw_request.path,
            verb=verb,
            resource=resource_name,
            namespace=api.namespace if api else None,
            name=api.name if api else None,
            user_agent=raw_request.headers.get("User-Agent", ""),
        )
        self.request_log.append(record)
        self.requests_served += 1
        content_type = raw_request.headers.get("Content-Type", "application/json")
        try:
            if body and "json" not in content_type:
                # Protobuf/CBOR: client-go answers 415 by retrying with JSON.
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of type {content_type!r} is not supported",
                )
            try:
                data = json.loads(body) if body else None
            except ValueError as error:
                raise ApiError(
                    400, "BadRequest", f"the request body is not JSON: {error}"
                ) from error
        except ApiError as error:
            response: aiohttp.web.StreamResponse = self._error_response(error)
            record.status = response.status
            return response

        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            body=body,
            text=body.decode("utf-8", errors="replace"),
            data=data,
            action=_KMOCK_ACTIONS.get(verb or ""),
            resource=kmock.resource(api.group, api.version, api.plural)
            if api and api.plural
            else None,
            namespace=api.namespace if api else None,
            name=api.name if api else None,
            subresource=api.subresource if api else None,
        )
        self._requests.append(request)
        if len(self._requests) > self.kmock_request_limit:
            del self._requests[: len(self._requests) - self.kmock_request_limit]
        try:
            response = await self._handle(request, raw_request)
        except Exception as error:
            logger.exception("emulator failed on %s %s", raw_request.method, raw_request.path)
            response = self._error_response(ApiError(500, "InternalError", repr(error)))
        record.status = response.status
        return response

    async def _handle(
        self, request: kmock.Request, raw: aiohttp.web.BaseRequest | None = None
    ) -> aiohttp.web.StreamResponse:
        # Reactions a test registered through kmock's DSL come first (fault injection).
        if self._payloads:
            try:
                return await kmock.RawHandler._handle(self, request)
            except NotImplementedError:
                pass
        assert raw is not None
        return await self._serve(request, raw)

    # ------------------------------------------------------------------ routing

    async def _serve(
        self, request: kmock.Request, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        path = raw.path.rstrip("/") or "/"
        try:
            api = parse_api_path(path)
            if api is None or api.plural is None:
                return self._json(discovery.document(path, self._registry, raw.host))
            rtype = self._registry.get(api.group, api.version, api.plural)
            if rtype is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return await self._serve_resource(request, raw, api, rtype)
        except ApiError as error:
            return self._error_response(error)
        except SelectorError as error:
            return self._error_response(ApiError(400, "BadRequest", str(error)))

    async def _serve_resource(
        self,
        request: kmock.Request,
        raw: aiohttp.web.BaseRequest,
        api: ApiPath,
        rtype: ResourceType,
    ) -> aiohttp.web.StreamResponse:
        method = raw.method.upper()
        query = raw.query
        namespace = api.namespace if rtype.namespaced else None
        if api.subresource not in (None, "status") or (
            api.subresource == "status" and not rtype.has_status
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._hub.serve(
                raw,
                rtype,
                namespace,
                api.name,
                lambda: self._objects_in(rtype, namespace),
                self._rv,
            )
        if method == "GET" and api.name is None:
            items = self._select(
                rtype, namespace, query.get("labelSelector"), query.get("fieldSelector")
            )
            if tables.wants_table(raw.headers.get("Accept", "")):
                return self._json(tables.table(rtype, items, self._rv))
            return self._json(self._list_body(rtype, items))
        if api.name is None:
            if method == "POST":
                if rtype.namespaced and namespace is None:
                    raise ApiError(
                        405, "MethodNotAllowed", "create requires a namespace in the URL"
                    )
                obj = self.create_object(
                    rtype,
                    namespace,
                    request.data,
                    field_validation=query.get("fieldValidation"),
                    dry_run=bool(query.get("dryRun")),
                )
                return self._json(obj, status=201)
            if method == "DELETE":
                items = self._select(
                    rtype, namespace, query.get("labelSelector"), query.get("fieldSelector")
                )
                for item in items:
                    self.delete_object(
                        rtype, _meta(item).get("namespace"), _meta(item)["name"], request.data
                    )
                return self._json(self._list_body(rtype, items))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        name = api.name
        if method == "GET":
            stored = self._store[rtype.key].get((namespace, name))
            if stored is None:
                raise not_found(rtype, name)
            obj = stored
            if tables.wants_table(raw.headers.get("Accept", "")):
                return self._json(tables.table(rtype, [obj], self._rv))
            return self._json(obj)
        if method == "PUT":
            obj = self.update_object(
                rtype,
                namespace,
                name,
                request.data,
                subresource=api.subresource,
                field_validation=query.get("fieldValidation"),
                dry_run=bool(query.get("dryRun")),
            )
            return self._json(obj)
        if method == "PATCH":
            content_type = raw.headers.get("Content-Type", patching.MERGE_PATCH)
            obj = self.patch_object(
                rtype,
                namespace,
                name,
                request.data,
                content_type,
                subresource=api.subresource,
                field_validation=query.get("fieldValidation"),
                dry_run=bool(query.get("dryRun")),
            )
            return self._json(obj)
        if method == "DELETE":
            policy = query.get("propagationPolicy")
            options = dict(request.data or {})
            if policy:
                options["propagationPolicy"] = policy
            obj = self.delete_object(rtype, namespace, name, options)
            return self._json(obj)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    # ------------------------------------------------------------------ writes

    def create_object(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        if obj["apiVersion"] != rtype.api_version or obj["kind"] != rtype.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the object is {obj['apiVersion']}/{obj['kind']}, not {rtype.api_version}/{rtype.kind}",
            )
        meta = obj.setdefault("metadata", {})
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
            self._require_namespace(namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rtype,
                    "",
                    [
                        FieldError(
                            "metadata.name",
                            "FieldValueRequired",
                            "metadata.name: Required value: name or generateName is required",
                        )
                    ],
                )
            for _ in range(20):
                candidate = meta["generateName"] + "".join(
                    secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5)
                )
                if (namespace, candidate) not in self._store[rtype.key]:
                    meta["name"] = candidate
                    break
        name = meta["name"]
        if (namespace, name) in self._store[rtype.key]:
            raise already_exists(rtype, name)
        if rtype.has_status:
            obj.pop("status", None)  # the status subresource owns it
        obj = self._admit(rtype, obj, None, field_validation)
        meta = obj["metadata"]
        for server_field in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "uid",
        ):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if rtype.key == CRD_KEY:
            obj = self._register_crd(obj)
        if dry_run:
            return obj
        self._commit(rtype, (namespace, name), None, obj)
        return obj

    def patch_object(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        old = self._store[rtype.key].get((namespace, name))
        if old is None:
            raise not_found(rtype, name)
        try:
            new = patching.apply_patch(old, body, content_type)
        except patching.PatchError as error:
            code = 415 if "unsupported patch type" in str(error) else 422
            raise ApiError(
                code, "Invalid" if code == 422 else "UnsupportedMediaType", str(error)
            ) from error
        return self.update_object(
            rtype,
            namespace,
            name,
            new,
            subresource=subresource,
            field_validation=field_validation,
            dry_run=dry_run,
        )

    def update_object(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        old = self._store[rtype.key].get((namespace, name))
        if old is None:
            raise not_found(rtype, name)
        new = copy.deepcopy(body)
        new_meta: dict[str, Any] = new["metadata"] if isinstance(new.get("metadata"), dict) else {}
        if new_meta.get("name") not in (None, name):
            raise ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        expected_rv = new_meta.get("resourceVersion")
        if expected_rv and expected_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rtype, name)

        if subresource == "status":
            # Writes to /status change status only; everything else stays as stored.
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        else:
            new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
            if rtype.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            meta = new.setdefault("metadata", {})
            for server_field in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
            ):
                if server_field in old["metadata"]:
                    meta[server_field] = old["metadata"][server_field]
                else:
                    meta.pop(server_field, None)
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if old["metadata"].get("deletionTimestamp") and added:
                raise invalid(
                    rtype,
                    name,
                    [
                        FieldError(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            f"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)}",
                        )
                    ],
                )
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self._admit(rtype, new, old, field_validation, status_only=subresource == "status")

        if new == old:
            return old  # a no-op write: no new resourceVersion, no watch event
        if self._spec_changed(rtype, old, new):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry_run:
            return new
        if rtype.key == CRD_KEY:
            new = self._register_crd(new)
        self._commit(rtype, (namespace, name), old, new)
        return new

    def delete_object(
        self, rtype: ResourceType, namespace: str | None, name: str, options: Any = None
    ) -> Obj:
        options = options if isinstance(options, dict) else {}
        old = self._store[rtype.key].get((namespace, name))
        if old is None:
            raise not_found(rtype, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") not in (None, old["metadata"]["uid"]):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {old['metadata']['uid']}",
            )
        if preconditions.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
            raise conflict(rtype, name)
        orphan = (
            options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
        )
        if old["metadata"].get("deletionTimestamp"):
            return old
        if old["metadata"].get("finalizers"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            self._commit(rtype, (namespace, name), old, new)
            return new
        removed = self._remove(rtype, (namespace, name), orphan=orphan)
        # Most built-in resources answer an immediate delete with a Status, custom resources with the object.
        if rtype.crd_name is None and rtype.plural not in ("pods", "namespaces"):
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": rtype.group,
                    "kind": rtype.plural,
                    "uid": removed["metadata"]["uid"],
                },
            }
        return removed

    # ------------------------------------------------------------------ internals

    def _admit(
        self,
        rtype: ResourceType,
        obj: Obj,
        old: Obj | None,
        field_validation: str | None,
        *,
        status_only: bool = False,
    ) -> Obj:
        if rtype.kind == "Secret" and obj.get("stringData"):
            # The API server folds write-only stringData into base64 data.
            obj = copy.deepcopy(obj)
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        schema = rtype.status_schema if status_only else rtype.schema
        if schema is None:
            return obj
        admission = schema.admit(obj, old)
        name = _meta(obj).get("name", "")
        if admission.unknown_fields and field_validation == "Strict":
            fields = ", ".join(f'unknown field "{path}"' for path in admission.unknown_fields)
            raise ApiError(400, "BadRequest", f"strict decoding error: {fields}")
        if admission.errors:
            raise invalid(rtype, name, admission.errors)
        if status_only:
            result = copy.deepcopy(obj)
            if "status" in admission.obj:
                result["status"] = admission.obj["status"]
            return result
        return admission.obj

    @staticmethod
    def _spec_changed(rtype: ResourceType, old: Obj, new: Obj) -> bool:
        ignored = {"metadata", "status"} if rtype.has_status else {"metadata"}
        return _body_without(old, ignored) != _body_without(new, ignored)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _commit(self, rtype: ResourceType, key: ObjectKey, old: Obj | None, new: Obj) -> None:
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._store[rtype.key][key] = new
        self._uids[new["metadata"]["uid"]] = (rtype.key, key)
        self._emit(rtype, "MODIFIED" if old is not None else "ADDED", old, new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(rtype, key, orphan=False)

    def _remove(self, rtype: ResourceType, key: ObjectKey, *, orphan: bool) -> Obj:
        old = self._store[rtype.key].pop(key)
        self._uids.pop(old["metadata"]["uid"], None)
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(rtype, "DELETED", old, gone)
        if rtype.key == CRD_KEY:
            self._unregister_crd(gone)
        if rtype.key == NAMESPACE_KEY:
            self._delete_namespace_contents(key[1])
        self._collect_dependents(old["metadata"]["uid"], orphan=orphan)
        return gone

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        """The garbage collector: dependents whose owners are all gone are deleted."""
        for rtype in self._registry:
            for key, obj in list(self._store[rtype.key].items()):
                refs = _meta(obj).get("ownerReferences") or []
                if not any(ref.get("uid") == owner_uid for ref in refs):
                    continue
                if key not in self._store[rtype.key]:
                    continue  # removed by an earlier cascade
                remaining = [ref for ref in refs if ref.get("uid") != owner_uid]
                if orphan or any(ref.get("uid") in self._uids for ref in remaining):
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = remaining
                    if not remaining:
                        del new["metadata"]["ownerReferences"]
                    self._commit(rtype, key, obj, new)
                else:
                    self.delete_object(rtype, key[0], key[1], {"propagationPolicy": "Background"})

    def _delete_namespace_contents(self, namespace: str) -> None:
        for rtype in self._registry:
            if not rtype.namespaced:
                continue
            for ns, name in list(self._store[rtype.key]):
                if ns == namespace and (ns, name) in self._store[rtype.key]:
                    self.delete_object(rtype, ns, name)

    def _ensure_namespace(self, namespace: str) -> None:
        rtype = self._registry.get(*NAMESPACE_KEY)
        assert rtype is not None
        if (None, namespace) not in self._store[NAMESPACE_KEY]:
            self.create_object(
                rtype,
                None,
                {"metadata": {"name": namespace}, "spec": {"finalizers": ["kubernetes"]}},
            )
            stored = self._store[NAMESPACE_KEY][(None, namespace)]
            stored["status"] = {"phase": "Active"}

    def _require_namespace(self, namespace: str | None) -> None:
        if namespace is None or (None, namespace) in self._store[NAMESPACE_KEY]:
            return
        if not self.auto_create_namespaces:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        self._ensure_namespace(namespace)

    def _register_crd(self, crd: Obj) -> Obj:
        types = crd_types(crd)
        for rtype in types:
            if rtype.schema is not None:
                for rule in unsupported_rules(rtype.schema.schema):
                    logger.warning(
                        "CEL rule %r of %s is not evaluated by the emulator",
                        rule,
                        rtype.group_resource,
                    )
        name = _meta(crd).get("name", "")
        self._registry.remove_crd(name)
        for rtype in types:
            self._registry.add(rtype)
        names = crd.get("spec", {}).get("names", {})
        crd = copy.deepcopy(crd)
        now = now_rfc3339()
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [
                v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("storage")
            ],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
        }
        return crd

    def _unregister_crd(self, crd: Obj) -> None:
        for rtype in self._registry.remove_crd(_meta(crd).get("name", "")):
            for key in list(self._store[rtype.key]):
                obj = self._store[rtype.key].pop(key)
                self._uids.pop(obj["metadata"]["uid"], None)
                gone = copy.deepcopy(obj)
                gone["metadata"]["resourceVersion"] = self._next_rv()
                self._emit(rtype, "DELETED", obj, gone)

    def _select(
        self, rtype: ResourceType, namespace: str | None, labels: str | None, fields: str | None
    ) -> list[Obj]:
        matches = object_matcher(labels, fields)
        return [
            obj
            for (ns, _), obj in sorted(
                self._store[rtype.key].items(), key=lambda item: (item[0][0] or "", item[0][1])
            )
            if (namespace is None or ns == namespace) and matches(obj)
        ]

    def _objects_in(self, rtype: ResourceType, namespace: str | None) -> list[Obj]:
        return [obj for (ns, _), obj in self._store[rtype.key].items() if namespace in (None, ns)]

    def _list_body(self, rtype: ResourceType, items: list[Obj]) -> Obj:
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    # ------------------------------------------------------------------ watch

    def _emit(self, rtype: ResourceType, kind: str, old: Obj | None, new: Obj) -> None:
        self._hub.publish(rtype.key, kind, old, new)

    # ------------------------------------------------------------------ responses

    @staticmethod
    def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json"
        )

    def _error_response(self, error: ApiError) -> aiohttp.web.Response:
        return self._json(error.status(), status=error.code)


_KMOCK_ACTIONS: dict[str, kmock.action] = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "update": kmock.action.UPDATE,
    "patch": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
}
