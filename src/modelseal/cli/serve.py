"""``modelseal serve``: an inference server (Open Inference Protocol v2) that only runs models
that verified, scanned clean and (when asked) passed the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelseal.cli.store import store_options


@click.command()
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    metavar="[NAME=]MODEL",
    help="NAME@ALIAS or NAME:VERSION from the registry (repeatable), or one model on disk "
    "([NAME=]PATH with --signature; NAME defaults to the folder's name or the file's stem).",
)
@click.option(
    "--shadow",
    "shadows",
    multiple=True,
    metavar="NAME=REF",
    help="Mirror NAME's traffic to registry version REF (NAME@ALIAS or NAME:VERSION), checked "
    "like a served model; compare its outputs, never return them (repeatable).",
)
@click.option("--signature", type=click.Path(dir_okay=False), default=None,
              help="The signature bundle of a model on disk.")  # fmt: skip
@click.option("--public-key", type=click.Path(dir_okay=False), default=None,
              help="The signer's public key (a model on disk; pins the signer of registry "
                   "models).")  # fmt: skip
@click.option("--trust-anchor", "trust_anchors", multiple=True, type=click.Path(dir_okay=False),
              help="A CA certificate for certificate-signed models (repeatable).")  # fmt: skip
@click.option("--framework", default="auto", show_default=True,
              type=click.Choice(["auto", "sklearn", "xgboost", "lightgbm", "onnx",
                                 "torchscript"]),
              help="The model's framework (auto: by content).")  # fmt: skip
@click.option(
    "--allow",
    multiple=True,
    metavar="GLOBAL",
    help="Extend the restricted unpickler's allow-list (e.g. your own classes).",
)
@click.option(
    "--input-signature",
    type=click.Path(dir_okay=False),
    default=None,
    help="The model's input signature (JSON; else recorded at push or inferred).",
)
@click.option("--gate-key", "gate_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Serve registry models only with a passing gate decision signed by this "
                   "key (repeatable).")  # fmt: skip
@click.option(
    "--kek",
    default=None,
    metavar="URI",
    help="Key-encryption key of encrypted registry versions (default $MODELSEAL_ENCRYPTION_KEK "
    "or encryption_kek in config.toml); opened once, at start.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Passphrase of a local: KEK file (else $MODELSEAL_PASSPHRASE, else a prompt).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on.")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TLS certificate (PEM); serve HTTPS with --tls-key.")  # fmt: skip
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TLS private key (PEM).")  # fmt: skip
@click.option("--tls-client-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Require client certificates issued by this CA (PEM).")  # fmt: skip
@click.option(
    "--no-auth",
    is_flag=True,
    help="Answer without tokens (default: a registry token with model.infer).",
)
@click.option("--rate-limit", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Requests per second per token (0: no limit).")  # fmt: skip
@click.option("--poll-interval", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds between checks for a moved alias (0: never).")  # fmt: skip
@click.option(
    "--reverify-interval",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds between re-verifications of the served models (0: never).",
)
@click.option("--max-body", type=click.IntRange(min=1), default=64 << 20, show_default=True,
              help="Largest request body in bytes.")  # fmt: skip
@click.option("--max-batch", type=click.IntRange(min=1), default=65_536, show_default=True,
              help="Most rows in one request.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds one inference may take.")  # fmt: skip
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Proxies whose X-Forwarded-For headers are believed (default: none).",
)
@store_options
def serve(
    models: tuple[str, ...],
    shadows: tuple[str, ...],
    signature: str | None,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    framework: str,
    allow: tuple[str, ...],
    input_signature: str | None,
    gate_keys: tuple[str, ...],
    kek: str | None,
    passphrase_file: str | None,
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    no_auth: bool,
    rate_limit: float,
    poll_interval: float,
    reverify_interval: float,
    max_body: int,
    max_batch: int,
    timeout: float,
    forwarded_allow_ips: str | None,
    **store: Any,
) -> None:
    """Serve models over the Open Inference Protocol v2 (KServe v2, Triton, MLServer clients).

    Each model is verified, scanned, gated (with --gate-key) and loaded from exactly the
    verified bytes before it is served; one that fails is not served and /v2/health/ready says
    why. Registry models follow their alias: a new version is verified and swapped in with no
    failed request. Requests need a registry token with model.infer unless --no-auth.
    """
    from modelseal.cli.store import config_from
    from modelseal.errors import UsageError
    from modelseal.serving.app import Limits
    from modelseal.serving.run import ServeSettings, build, run

    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together", hint="give both or neither")
    if tls_client_ca is not None and tls_cert is None:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key", hint="serve HTTPS")
    config = config_from(store)
    sources = _sources(models, signature, public_key, trust_anchors, framework, allow,
                       input_signature, gate_keys)  # fmt: skip
    uri = kek or config.encryption_kek
    if uri and any(s.ref is not None for s in sources):
        import dataclasses

        from modelseal.cli.common import open_kek

        provider = open_kek(uri, passphrase_file)  # any prompt now, never in the background
        sources = [dataclasses.replace(s, kek=provider) if s.ref is not None else s
                   for s in sources]  # fmt: skip
    candidates = _shadows(shadows, sources)
    needs_registry = any(s.ref is not None for s in sources) or not no_auth or bool(candidates)
    registry = backend = None
    if needs_registry:
        registry, backend = _open_registry(config, auth=not no_auth)
    settings = ServeSettings(
        auth=not no_auth,
        rate=rate_limit,
        poll_interval=poll_interval,
        reverify_interval=reverify_interval,
        limits=Limits(max_body=max_body, max_batch=max_batch, timeout=timeout),
    )
    from modelseal import __version__

    app = build(sources, settings, shadows=candidates, registry=registry, backend=backend,
                version=__version__)  # fmt: skip
    click.echo(f"serving on {'https' if tls_cert else 'http'}://{host}:{port}/v2", err=True)
    run(app, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, client_ca=tls_client_ca,
        forwarded_allow_ips=forwarded_allow_ips)  # fmt: skip


def _sources(
    models: tuple[str, ...],
    signature: str | None,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    framework: str,
    allow: tuple[str, ...],
    input_signature: str | None,
    gate_keys: tuple[str, ...],
) -> list[Any]:
    from modelseal.errors import ModelsealError, UsageError
    from modelseal.registry.models import VersionRef
    from modelseal.serving.signature import load_signature_file
    from modelseal.serving.source import ModelSource, default_name, parse_model_option
    from modelseal.signing.keys import load_public_key

    declared = load_signature_file(input_signature) if input_signature else None
    keys = tuple(load_public_key(k) for k in gate_keys)
    anchors = tuple(Path(a) for a in trust_anchors)
    pinned = Path(public_key) if public_key else None
    out: list[ModelSource] = []
    for value in models:
        name, target = parse_model_option(value)
        if Path(target).exists():
            if signature is None:
                raise UsageError(
                    f"serving {target!r} from disk needs its signature",
                    hint="give --signature and --public-key (or --trust-anchor)",
                )
            if len(models) > 1:
                raise UsageError(
                    "only one model can be served from disk",
                    hint="serve several models from the registry (NAME@ALIAS)",
                )
            path = Path(target)
            out.append(ModelSource(name or default_name(path), path=path,
                                   signature=Path(signature), public_key=pinned,
                                   trust_anchors=anchors, framework=framework, allow=allow,
                                   input_signature=declared, gate_keys=keys))  # fmt: skip
            continue
        try:
            ref = VersionRef.parse(target)
        except ModelsealError:
            raise UsageError(
                f"{target!r} is neither a model path that exists nor a registry reference",
                hint="give PATH with --signature, or NAME@ALIAS / NAME:VERSION",
            ) from None
        if len(models) > 1 and declared is not None:
            raise UsageError(
                "--input-signature applies to one model",
                hint="record each model's input signature at push",
            )
        out.append(ModelSource(name or ref.model, ref=target, public_key=pinned,
                               trust_anchors=anchors, framework=framework, allow=allow,
                               input_signature=declared, gate_keys=keys))  # fmt: skip
    return out


def _shadows(values: tuple[str, ...], sources: list[Any]) -> list[Any]:
    import dataclasses

    from modelseal.errors import ModelsealError, UsageError
    from modelseal.registry.models import VersionRef

    served = {s.name: s for s in sources}
    out = []
    for value in values:
        name, sep, ref = value.partition("=")
        if not sep or name not in served:
            raise UsageError(
                f"--shadow {value!r} must name a served model: NAME=REF",
                hint=f"served models: {', '.join(served)}",
            )
        try:
            VersionRef.parse(ref)
        except ModelsealError:
            raise UsageError(
                f"--shadow {value!r}: {ref!r} is not a registry reference",
                hint="give NAME@ALIAS or NAME:VERSION",
            ) from None
        base = served[name]
        out.append(dataclasses.replace(base, ref=ref, path=None, signature=None,
                                       input_signature=None))  # fmt: skip
    return out


def _open_registry(config: Any, *, auth: bool) -> tuple[Any, Any]:
    """The registry (for tokens and the audit) and the backend models are pulled from."""
    from modelseal.errors import UsageError

    if config.server:
        if auth:
            raise UsageError(
                "checking tokens needs the registry's database, not its server URL",
                hint="give --home or --db-url/--blob-url (replicas share the database), "
                "or --no-auth",
            )
        from modelseal.client import Client

        return None, Client(config.server, token=config.token)
    from modelseal.registry.backend import LocalBackend
    from modelseal.registry.core import Registry

    registry = Registry.open(config)
    return registry, LocalBackend(registry)
