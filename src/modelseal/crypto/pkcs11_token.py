"""PKCS#11 plumbing shared by the KEK provider and the signer: RFC 7512 URIs and sessions.

A URI names the module, the token and the object, e.g.
``pkcs11:token=modelseal;object=kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin``.
When the URI leaves them out, the module comes from ``$MODELSEAL_PKCS11_MODULE`` (else SoftHSM2's
usual path) and the user PIN from ``$MODELSEAL_PKCS11_PIN``. PINs are never shown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from modelseal.errors import ProviderError

MODULE_ENV = "MODELSEAL_PKCS11_MODULE"
PIN_ENV = "MODELSEAL_PKCS11_PIN"
DEFAULT_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
_PATH_ATTRS = {"token", "manufacturer", "serial", "model", "object", "id", "type", "slot-id"}
_QUERY_ATTRS = {"module-path", "module-name", "pin-value", "pin-source"}
_HINT = "e.g. pkcs11:token=NAME;object=LABEL?module-path=/usr/lib/softhsm/libsofthsm2.so"


@dataclasses.dataclass(frozen=True, repr=False)
class Pkcs11Uri:
    """The parts of a PKCS#11 URI modelseal uses."""

    token: str | None
    serial: str | None
    object_label: str | None
    object_id: bytes | None
    module_path: str
    pin: str | None

    def __repr__(self) -> str:
        return f"Pkcs11Uri(token={self.token!r}, object={self.object_label!r})"

    def describe(self) -> str:
        """The URI without secrets, for messages."""
        parts = [f"token={self.token}"] if self.token else []
        if self.object_label:
            parts.append(f"object={self.object_label}")
        return "pkcs11:" + ";".join(parts)


def _decode(value: str, what: str) -> str:
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise ProviderError(f"PKCS#11 URI attribute {what} is not UTF-8", hint=_HINT) from None


def parse_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI; unknown attributes are an error rather than silently ignored."""
    if not uri.startswith("pkcs11:"):
        raise ProviderError(f"not a PKCS#11 URI: {uri.split(':', 1)[0]!r}", hint=_HINT)
    body = uri[len("pkcs11:") :]
    path, _, query = body.partition("?")
    attrs: dict[str, str] = {}
    for item in filter(None, path.split(";")):
        name, eq, value = item.partition("=")
        if not eq or name not in _PATH_ATTRS or name in attrs:
            raise ProviderError(f"bad PKCS#11 URI attribute {name!r}", hint=_HINT)
        attrs[name] = value
    for item in filter(None, query.split("&")):
        name, eq, value = item.partition("=")
        if not eq or name not in _QUERY_ATTRS or name in attrs:
            raise ProviderError(f"bad PKCS#11 URI query attribute {name!r}", hint=_HINT)
        attrs[name] = value
    module = _decode(attrs["module-path"], "module-path") if "module-path" in attrs else None
    module = (
        module
        or os.environ.get(MODULE_ENV)
        or next((m for m in DEFAULT_MODULES if os.path.exists(m)), None)
    )
    if module is None:
        raise ProviderError(
            "no PKCS#11 module: the URI has no module-path and none is installed",
            hint=f"add ?module-path=... or set {MODULE_ENV} (SoftHSM2: apt-get install softhsm2)",
        )
    pin = None
    if "pin-value" in attrs:
        pin = _decode(attrs["pin-value"], "pin-value")
    elif "pin-source" in attrs:
        source = _decode(attrs["pin-source"], "pin-source")
        source = source[len("file:") :] if source.startswith("file:") else source
        try:
            from modelseal.fsinput import read_regular  # never waits on a FIFO

            pin = read_regular(source, 256).decode("utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ProviderError(
                f"cannot read the PIN file {source!r}: {why}", hint="check pin-source"
            ) from None
    else:
        pin = os.environ.get(PIN_ENV)
    object_id = unquote_to_bytes(attrs["id"]) if "id" in attrs else None
    return Pkcs11Uri(
        token=_decode(attrs["token"], "token") if "token" in attrs else None,
        serial=_decode(attrs["serial"], "serial") if "serial" in attrs else None,
        object_label=_decode(attrs["object"], "object") if "object" in attrs else None,
        object_id=object_id,
        module_path=module,
        pin=pin,
    )


@functools.cache
def _library(path: str) -> Any:
    # A PKCS#11 module may be initialized once per process; keep one handle per path.
    import pkcs11

    return pkcs11.lib(path)


def require_binding() -> None:
    """Fail with an install hint (not a traceback) when python-pkcs11 is missing."""
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        raise ProviderError(
            "PKCS#11 support needs python-pkcs11", hint="pip install 'modelseal[crypto]'"
        ) from None


def load_library(path: str) -> Any:
    """The PKCS#11 module at ``path``, loaded once per process.

    A :class:`ProviderError` if python-pkcs11 is missing or the module does not load.
    """
    require_binding()
    try:
        return _library(path)
    except Exception as exc:  # python-pkcs11 raises RuntimeError subclasses and OSError
        raise ProviderError(
            f"cannot load the PKCS#11 module {path!r} ({type(exc).__name__})",
            hint=f"check module-path / {MODULE_ENV}",
        ) from None


@contextlib.contextmanager
def session(uri: Pkcs11Uri, *, rw: bool = False) -> Iterator[Any]:
    """A logged-in session on the token the URI names."""
    import pkcs11
    from pkcs11 import exceptions as pe

    lib = load_library(uri.module_path)
    try:
        token = lib.get_token(
            token_label=uri.token, token_serial=(uri.serial or "").encode() or None
        )
    except (pe.NoSuchToken, pe.MultipleTokensReturned):
        raise ProviderError(
            f"no single PKCS#11 token matches {uri.describe()}",
            hint="check token= (softhsm2-util --show-slots lists tokens)",
        ) from None
    if uri.pin is None:
        raise ProviderError(
            f"no PIN for {uri.describe()}", hint=f"add ?pin-source=file:PATH or set {PIN_ENV}"
        )
    try:
        opened = token.open(rw=rw, user_pin=uri.pin)
    except pe.PinIncorrect:
        raise ProviderError(f"wrong PIN for {uri.describe()}", hint="check the PIN") from None
    except pkcs11.PKCS11Error as exc:
        raise ProviderError(
            f"cannot open a session on {uri.describe()} ({type(exc).__name__})",
            hint="check the token and PIN",
        ) from None
    with opened as s:
        yield s
