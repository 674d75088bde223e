"""``modelseal bom``: a CycloneDX 1.6 ML-BOM of a verified model."""

from __future__ import annotations

import json
from typing import Any

import click

from modelseal.cli.store import config_from, open_backend, store_options


@click.command()
@click.argument("model", metavar="MODEL_OR_REF")
@click.option(
    "--signature",
    type=click.Path(dir_okay=False),
    default=None,
    help="The signature bundle (a model given by path).",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False),
    default=None,
    help="The signer's public key (a model given by path).",
)
@click.option(
    "--trust-anchor",
    "trust_anchors",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A CA certificate for certificate signatures (repeatable).",
)
@click.option(
    "--gate-key",
    "gate_keys",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A gate public key: only decisions it verifies are reported (repeatable).",
)
@click.option(
    "--attestation",
    "attestations",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A gate decision bundle to include (besides those stored in the registry).",
)
@click.option(
    "--environment",
    type=click.Path(dir_okay=False),
    default=None,
    help="The training environment (from 'modelseal env capture').",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the BOM here (else to stdout).",
)
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="With --output, report what was written as JSON (the BOM itself is JSON on stdout).",
)
@store_options
def bom(
    model: str,
    signature: str | None,
    public_key: str | None,
    trust_anchors: tuple[str, ...],
    gate_keys: tuple[str, ...],
    attestations: tuple[str, ...],
    environment: str | None,
    output: str | None,
    force: bool,
    as_json: bool,
    **store: Any,
) -> None:
    """Write the CycloneDX 1.6 ML-BOM of MODEL_OR_REF (a path with --signature, or
    NAME[:VERSION|@ALIAS]): the model and its files by digest, a model card with the metrics
    and datasets the gate attested (verified with --gate-key), and the training environment's
    packages. The model is verified first.

    \b
    Exit codes: 0 written, 1 the model does not verify, 2 unusable input.
    """
    from modelseal import __version__
    from modelseal.policy.bom import describe
    from modelseal.policy.gate import is_reference

    backend = open_backend(config_from(store)) if is_reference(model) else None
    try:
        document, notes = describe(
            model, signature=signature, public_key=public_key, trust_anchors=trust_anchors,
            attestations=attestations, gate_keys=gate_keys, environment=environment,
            backend=backend, tool_version=__version__,
        )  # fmt: skip
    finally:
        if backend is not None:
            backend.close()
    for note in notes:
        click.echo(f"modelseal: note: {note}", err=True)
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    from modelseal.fsutil import atomic_write

    atomic_write(output, text.encode("utf-8"), mode=0o644, overwrite=force)
    component = document["metadata"]["component"]
    if as_json:
        summary = {"output": output, "specVersion": document["specVersion"],
                   "serialNumber": document["serialNumber"], "model": component["name"],
                   "version": component.get("version"),
                   "components": len(document.get("components", []))}  # fmt: skip
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"wrote {output}: CycloneDX {document['specVersion']} ML-BOM of "
               f"{component['name']}", err=True)  # fmt: skip
