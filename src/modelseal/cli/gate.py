"""``modelseal gate``, ``attest`` and ``env``: the pre-deployment gate, its signed evidence, and
the environments it compares."""

from __future__ import annotations

import json
from typing import Any

import click

from modelseal.cli.common import emit_json, report
from modelseal.cli.store import config_from, open_backend, store_options, with_backend
from modelseal.fsinput import read_regular


@click.command()
@click.argument("model", metavar="MODEL_OR_REF")
@click.option("--policy", required=True, type=click.Path(dir_okay=False), help="The policy (YAML).")
@click.option(
    "--signature",
    type=click.Path(dir_okay=False),
    default=None,
    help="The model's signature bundle (a model given by path).",
)
@click.option("--data", type=click.Path(dir_okay=False), default=None, help="Validation data.")
@click.option(
    "--baseline",
    default=None,
    metavar="REF",
    help="Compare metrics with this registry version [default: the model's production].",
)
@click.option(
    "--environment",
    type=click.Path(dir_okay=False),
    default=None,
    help="The training environment of a model given by path (from 'modelseal env capture').",
)
@click.option(
    "--attest",
    "attest",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the signed decision and evidence here (in-toto attestation bundle, JSON lines).",
)
@click.option(
    "--gate-key",
    type=click.Path(dir_okay=False),
    default=None,
    help="The gate's private key that signs the evidence (needed with --attest).",
)
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Passphrase of the gate key (else $MODELSEAL_PASSPHRASE, else a prompt).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@store_options
def gate(
    model: str,
    policy: str,
    signature: str | None,
    data: str | None,
    baseline: str | None,
    environment: str | None,
    attest: str | None,
    gate_key: str | None,
    passphrase_file: str | None,
    as_json: bool,
    **store: Any,
) -> None:
    """Check MODEL_OR_REF (a path with --signature, or NAME[:VERSION|@ALIAS] in the registry)
    against POLICY: signature, scan, metrics, environment, custom rules.

    \b
    Exit codes: 0 every check passed, 1 a check failed (each failure on one line), 2 unusable
    input (a malformed policy, an unreadable model, dataset or key).
    """
    from modelseal.errors import UsageError
    from modelseal.policy.document import load_policy
    from modelseal.policy.gate import gate as run_gate
    from modelseal.policy.gate import is_reference

    if attest is not None and gate_key is None:
        raise UsageError("--attest needs --gate-key", hint="give the gate's private key")
    loaded = load_policy(policy)  # a malformed policy stops here, before anything is read
    key = _gate_key(gate_key, passphrase_file) if gate_key else None
    wants_registry = is_reference(model) or baseline is not None
    backend = open_backend(config_from(store)) if wants_registry else None
    try:
        decision = run_gate(
            model,
            policy=loaded,
            signature=signature,
            data=data,
            baseline=baseline,
            environment=environment,
            backend=backend,
        )
    finally:
        if backend is not None:
            backend.close()
    if attest is not None:
        from modelseal import __version__
        from modelseal.fsutil import atomic_write
        from modelseal.policy import evidence

        bundle = evidence.dumps(evidence.envelopes_for(decision, key, version=__version__))
        atomic_write(attest, bundle.encode("utf-8"), mode=0o644)
    if as_json:
        emit_json(decision)
    else:
        for check in decision.checks:
            mark = "PASS" if check.passed else "FAIL"
            for line in check.lines:
                click.echo(f"{mark}  {line}")
        verdict = "PASSED" if decision.passed else "FAILED"
        click.echo(f"gate {verdict}: {decision.model} sha256:{decision.digest} "
                   f"under policy sha256:{decision.policy_digest[:16]}...")  # fmt: skip
    if not decision.passed:
        from modelseal.errors import VerificationError

        failed = [c.check for c in decision.checks if not c.passed]
        raise VerificationError(
            f"the gate refused {decision.model}: {', '.join(failed)} failed",
            hint="fix what the lines above say; the model may not be promoted",
        )


def _gate_key(path: str, passphrase_file: str | None) -> Any:
    from modelseal.cli.common import read_passphrase
    from modelseal.signing.keys import load_private_key

    try:
        data = read_regular(path, 1 << 20)  # never waits on a FIFO
    except OSError:
        data = b""  # load_private_key says what is wrong with it
    passphrase = read_passphrase(passphrase_file) if b"ENCRYPTED" in data else None
    return load_private_key(path, passphrase)


@click.group()
def attest() -> None:
    """Verify, attach and list gate decisions (in-toto attestation bundles)."""


@attest.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="A gate public key to trust (repeatable).",
)
@click.option("--digest", required=True, help="The model's manifest digest (sha256 hex).")
@click.option("--json", "as_json", is_flag=True, help="Print the verified decision as JSON.")
def attest_verify(bundle: str, public_keys: tuple[str, ...], digest: str, as_json: bool) -> None:
    """Check BUNDLE: signed by a trusted gate key, about the model with --digest; exit 1 if
    it does not verify or if the decision it records FAILED."""
    from modelseal.errors import InputError, VerificationError
    from modelseal.policy import evidence
    from modelseal.signing.keys import load_public_key

    try:
        text = read_regular(bundle, 64 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {bundle!r}: {exc}", hint="check the path") from None
    keys = [load_public_key(k) for k in public_keys]
    verified = evidence.verify(
        evidence.loads(text, bundle), keys, digest=digest.lower().removeprefix("sha256:")
    )
    summary = verified.summary["predicate"]
    if as_json:
        emit_json({"verified": True, "result": summary["verificationResult"],
                   "policy_digest": verified.policy_digest, "keyid": verified.keyid,
                   "checks": [c["predicate"] for c in verified.checks]})  # fmt: skip
    else:
        click.echo(f"attestations verified: decision {summary['verificationResult']} for "
                   f"sha256:{digest} under policy sha256:{verified.policy_digest}")  # fmt: skip
    if not verified.passed:
        raise VerificationError("the recorded gate decision FAILED",
                                hint="the model may not be promoted")  # fmt: skip


@attest.command("attach")
@click.argument("ref", metavar="NAME:VERSION")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the stored attestation as JSON.")
@store_options
@with_backend
def attest_attach(backend: Any, ref: str, bundle: str, as_json: bool) -> None:
    """Store BUNDLE (from 'modelseal gate --attest') with version NAME:VERSION; the registry
    checks it first (a trusted gate key signed it, about this exact digest)."""
    from modelseal.errors import InputError
    from modelseal.registry.attestations import AttachAttestation

    name, number = _exact(ref)
    try:
        text = read_regular(bundle, 64 << 20).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {bundle!r}: {exc}", hint="check the path") from None
    stored = backend.call(AttachAttestation(name=name, number=number, bundle=text))
    report(as_json, stored, f"attached a {stored.result} gate decision to {name}:{number}")


@attest.command("list")
@click.argument("ref", metavar="NAME:VERSION")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the bundles).")
@store_options
@with_backend
def attest_list(backend: Any, ref: str, as_json: bool) -> None:
    """List the gate decisions stored with NAME:VERSION."""
    from modelseal.registry.attestations import ListAttestations

    name, number = _exact(ref)
    found = backend.call(ListAttestations(name=name, number=number))
    if as_json:
        emit_json(found)
        return
    for item in found:
        click.echo(f"#{item.id} {item.result} policy sha256:{item.policy_digest[:16]}... "
                   f"key {item.keyid[:16]} by {item.created_by} at {item.created_at}")  # fmt: skip


def _exact(ref: str) -> tuple[str, int]:
    from modelseal.errors import UsageError
    from modelseal.registry.models import VersionRef

    parsed = VersionRef.parse(ref)
    if parsed.number is None:
        raise UsageError(f"{ref!r} names no version", hint="use NAME:VERSION")
    return parsed.model, parsed.number


@click.group("env")
def environment() -> None:
    """Capture a Python environment (what the gate compares)."""


@environment.command("capture")
@click.option(
    "--lock",
    type=click.Path(dir_okay=False),
    default=None,
    help="Take the packages from this requirements lock file (== pins, --hash options).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here.")
@click.option("--force", is_flag=True, help="Replace the output if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the environment as JSON.")
def env_capture(lock: str | None, output: str | None, force: bool, as_json: bool) -> None:
    """Record this interpreter's environment (or a lock file's) for the gate."""
    from modelseal.fsutil import atomic_write
    from modelseal.policy.environment import capture

    captured = capture(lock)
    document = json.dumps(captured.model_dump(), indent=2, sort_keys=True) + "\n"
    if output is not None:
        atomic_write(output, document.encode("utf-8"), mode=0o644, overwrite=force)
        report(as_json, {"output": output, "packages": len(captured.packages)},
               f"wrote {output}: Python {captured.python}, "
               f"{len(captured.packages)} package(s)")  # fmt: skip
    else:
        click.echo(document, nl=False)
