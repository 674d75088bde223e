"""The HTTP client behind ``--server``: the same operations as the embedded store, over the
registry's API. Server errors come back as the same exception types (one CLI line, same exit
code); the token is sent only in the Authorization header and never printed."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

from modelseal.access.tokens import NewToken
from modelseal.errors import (
    InputError,
    MalformedSignatureError,
    ModelsealError,
    Reason,
    SignatureMismatchError,
    UsageError,
    VerificationError,
)
from modelseal.registry.errors import (
    AuthenticationError,
    ConflictError,
    DigestMismatchError,
    KeyRequiredError,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
    VersionTakenError,
)
from modelseal.registry.models import (
    FileEntry,
    GcReport,
    KeyChange,
    Lineage,
    ModelInfo,
    SealedVersion,
    UploadInfo,
    VersionInfo,
    VersionKey,
    VersionRef,
)
from modelseal.server.ratelimit import RateLimitedError

_BY_TYPE: dict[str, type[ModelsealError]] = {
    cls.__name__: cls
    for cls in (
        NotFoundError, ConflictError, AuthenticationError, PermissionDeniedError,
        DigestMismatchError, SignatureMismatchError, MalformedSignatureError, InputError,
        UsageError, KeyRequiredError, VersionTakenError, TooLargeError, RateLimitedError,
    )
}  # fmt: skip
_BY_STATUS: dict[int, type[ModelsealError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: VerificationError,
    429: RateLimitedError,
}
CHUNK = 1 << 20


class ServerError(InputError):
    """The server could not be reached, or answered something that is not the registry API."""


def _q(part: str) -> str:
    return quote(part, safe="")


class RemoteBackend:
    def __init__(self, url: str, *, token: str | None, timeout: float = 60.0) -> None:
        if not token:
            raise AuthenticationError(
                "no API token for the registry server",
                hint="set MODELSEAL_TOKEN or pass --token-file",
            )
        verify: Any = True
        ca_bundle = os.environ.get("MODELSEAL_CA_BUNDLE")
        if ca_bundle:
            import ssl

            try:
                verify = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise InputError(
                    f"cannot use MODELSEAL_CA_BUNDLE {ca_bundle!r}: {exc}",
                    hint="point it at a PEM file of CA certificates",
                ) from None
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            verify=verify,
        )

    # -------------------------------------------------------------------- plumbing
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"cannot reach the registry at {self.url}: {type(exc).__name__}",
                hint="check --server and that the server is running",
            ) from None
        if response.status_code >= 400:
            self._raise(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    def _raise(self, response: httpx.Response) -> NoReturn:
        try:
            error = response.json()["error"]
            message, hint = str(error["message"]), str(error.get("hint", ""))
            kind = str(error.get("type", ""))
            reasons = [
                Reason(r["code"], r["message"], r.get("path"))
                for r in error.get("reasons", [])
                if isinstance(r, dict) and "code" in r and "message" in r
            ]
        except (ValueError, KeyError, TypeError):
            raise ServerError(
                f"registry answered HTTP {response.status_code} without an error body",
                hint="is --server the registry's URL?",
            ) from None
        cls = _BY_TYPE.get(kind) or _BY_STATUS.get(response.status_code, InputError)
        if issubclass(cls, VerificationError):
            raise cls(message, reasons=reasons, hint=hint)
        raise cls(message, hint=hint)

    # --------------------------------------------------------------------- uploads
    def begin_upload(
        self,
        name: str,
        *,
        bundle: bytes,
        public_key: bytes | None,
        metadata: Mapping[str, Any],
        lineage: Lineage,
        encrypted: bool = False,
    ) -> UploadInfo:
        body = {
            "bundle": bundle.decode("utf-8", errors="replace"),
            "public_key": public_key.decode("ascii", errors="replace") if public_key else None,
            "metadata": dict(metadata),
            "lineage": lineage.to_dict(),
            "encrypted": encrypted,
        }
        data = self._json("POST", f"/v1/models/{_q(name)}/uploads", json=body)
        return UploadInfo(
            data["upload_id"], data["model"], tuple(data["files"]), data["root_digest"]["sha256"],
            bool(data.get("encrypted", False)),
        )  # fmt: skip

    def send_file(
        self, upload: UploadInfo, path: str, chunks: Iterable[bytes], size: int | None = None
    ) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:  # a plain body streams faster than chunked encoding
            headers["Content-Length"] = str(size)
        self._call(
            "PUT",
            f"/v1/uploads/{_q(upload.id)}/files/{quote(path, safe='/')}",
            content=chunks,
            headers=headers,
        )

    def next_version(self, upload: UploadInfo) -> int:
        return int(self._json("GET", f"/v1/uploads/{_q(upload.id)}")["next_version"])

    def publish(self, upload: UploadInfo, sealed: SealedVersion | None = None) -> VersionInfo:
        path = f"/v1/uploads/{_q(upload.id)}/publish"
        if sealed is None:
            return _version(self._json("POST", path))
        return _version(self._json("POST", path, json={"encryption": sealed.to_dict()}))

    def version_keys(self, provider: str | None) -> list[VersionKey]:
        params = {"provider": provider} if provider is not None else {}
        return [VersionKey.from_dict(k) for k in self._json("GET", "/v1/keys", params=params)]

    def replace_version_keys(
        self, changes: list[KeyChange], *, new_kek_id: str, retiring: list[str]
    ) -> int:
        body = {"changes": [c.to_dict() for c in changes], "new_kek_id": new_kek_id,
                "retiring": retiring}  # fmt: skip
        return int(self._json("POST", "/v1/keys/rotate", json=body)["replaced"])

    def abort(self, upload: UploadInfo) -> None:
        self._call("DELETE", f"/v1/uploads/{_q(upload.id)}")

    # ----------------------------------------------------------------------- reads
    def _ref_params(self, ref: VersionRef) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if ref.number is not None:
            params["version"] = ref.number
        if ref.alias is not None:
            params["alias"] = ref.alias
        return params

    def download_info(self, ref: VersionRef) -> VersionInfo:
        path = f"/v1/models/{_q(ref.model)}/download"
        return _version(self._json("GET", path, params=self._ref_params(ref)))

    def get_version(self, ref: VersionRef) -> VersionInfo:
        path = f"/v1/models/{_q(ref.model)}/resolve"
        return _version(self._json("GET", path, params=self._ref_params(ref)))

    def fetch(self, info: VersionInfo, path: str) -> Iterator[bytes]:
        url = f"/v1/models/{_q(info.model)}/versions/{info.number}/files/{quote(path, safe='/')}"
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise(response)
                yield from response.iter_bytes(CHUNK)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"download of {path!r} failed: {type(exc).__name__}", hint="try again"
            ) from None

    def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(m["name"], m["created_at"], m["created_by"], m["latest_version"],
                      m["aliases"])
            for m in self._json("GET", "/v1/models")
        ]  # fmt: skip

    def list_versions(self, name: str) -> list[VersionInfo]:
        return [_version(v) for v in self._json("GET", f"/v1/models/{_q(name)}/versions")]

    # ---------------------------------------------------------------------- writes
    def set_alias(self, name: str, alias: str, version: int) -> VersionInfo:
        path = f"/v1/models/{_q(name)}/aliases/{_q(alias)}"
        return _version(self._json("PUT", path, json={"version": version}))

    def delete_version(self, name: str, version: int, reason: str) -> VersionInfo:
        path = f"/v1/models/{_q(name)}/versions/{version}/delete"
        return _version(self._json("POST", path, json={"reason": reason}))

    def gc(self, grace_seconds: float) -> GcReport:
        return GcReport(**self._json("POST", "/v1/gc", json={"grace_seconds": grace_seconds}))

    def create_user(self, name: str) -> None:
        self._call("POST", "/v1/users", json={"name": name})

    def disable_user(self, name: str) -> None:
        self._call("POST", f"/v1/users/{_q(name)}/disable")

    def list_users(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = self._json("GET", "/v1/users")
        return users

    def grant_role(self, user: str, role: str, scope: str) -> None:
        self._call("POST", f"/v1/users/{_q(user)}/roles", json={"role": role, "scope": scope})

    def revoke_role(self, user: str, role: str, scope: str) -> None:
        body = {"role": role, "scope": scope}
        self._call("POST", f"/v1/users/{_q(user)}/roles/revoke", json=body)

    def create_token(
        self, user: str, expires_in: dt.timedelta | None, description: str
    ) -> NewToken:
        body = {
            "expires_in_seconds": int(expires_in.total_seconds()) if expires_in else None,
            "description": description,
        }
        data = self._json("POST", f"/v1/users/{_q(user)}/tokens", json=body)
        from modelseal.access.tokens import parse

        parsed = parse(data["token"])
        if parsed is None:
            raise ServerError("the server returned a malformed token", hint="check the server")
        return NewToken(*parsed)

    def revoke_token(self, token_id: str) -> None:
        self._call("POST", f"/v1/tokens/{_q(token_id)}/revoke")

    # ----------------------------------------------------------------------- trust
    def add_trusted_key(self, pem: bytes, name: str) -> dict[str, str]:
        body = {"pem": pem.decode("ascii", errors="replace"), "name": name}
        data: dict[str, str] = self._json("POST", "/v1/trust/keys", json=body)
        return data

    def remove_trusted_key(self, key_id: str) -> None:
        self._call("POST", f"/v1/trust/keys/{_q(key_id)}/remove")

    def list_trusted_keys(self) -> list[dict[str, str]]:
        keys: list[dict[str, str]] = self._json("GET", "/v1/trust/keys")
        return keys

    # ----------------------------------------------------------------------- audit
    def audit_checkpoint(self) -> str:
        return self._call("GET", "/v1/audit/checkpoint").text

    def audit_records(self, *, export: bool) -> Iterator[dict[str, Any]]:
        params = {"export": "true" if export else "false"}
        with self.http.stream("GET", "/v1/audit/records", params=params) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    def audit_inclusion(self, index: int, size: int | None) -> dict[str, Any]:
        params = {"index": index, **({"size": size} if size is not None else {})}
        data: dict[str, Any] = self._json("GET", "/v1/audit/proofs/inclusion", params=params)
        return data

    def audit_consistency(self, old: int, new: int | None) -> dict[str, Any]:
        params = {"old": old, **({"new": new} if new is not None else {})}
        data: dict[str, Any] = self._json("GET", "/v1/audit/proofs/consistency", params=params)
        return data

    def close(self) -> None:
        self.http.close()


def _version(data: Mapping[str, Any]) -> VersionInfo:
    try:
        return VersionInfo(
            model=data["model"],
            number=int(data["version"]),
            root_digest=data["root_digest"]["sha256"],
            signer=data["signer"],
            created_at=data["created_at"],
            created_by=data["created_by"],
            metadata=data["metadata"],
            lineage=Lineage.from_dict(data["lineage"]),
            files=tuple(FileEntry(f["path"], int(f["size"]), f["sha256"]) for f in data["files"]),
            aliases=tuple(data["aliases"]),
            bundle=data.get("bundle", ""),
            public_key=data.get("public_key"),
            deleted_at=data.get("deleted_at"),
            deleted_by=data.get("deleted_by"),
            delete_reason=data.get("delete_reason"),
            envelope=_envelope(data.get("encryption")),
        )
    except (KeyError, TypeError, ValueError):
        raise ServerError(
            "the registry answered with a malformed version", hint="check the server version"
        ) from None


def _envelope(encryption: Any) -> dict[str, Any] | None:
    """The envelope of an encrypted version (downloads), or its summary (other answers)."""
    if not encryption:
        return None
    envelope = encryption.get("envelope")
    if isinstance(envelope, dict):
        return envelope
    return {"dataKey": {"provider": encryption["provider"], "kekId": encryption["kek_id"]}}
