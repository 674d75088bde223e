"""``modelseal scan``: report unsafe content (exit 0 clean, 1 unsafe, 2 unscannable or usage)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from modelseal.scanning.report import ScanReport


@click.command("scan")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--strict", is_flag=True, help="Treat files of no recognised model format as unscannable."
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="GLOBAL",
    help="Allow a pickle global (module.name, module:qualname or module.*); repeatable.",
)
@click.option(
    "--allow-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML file with [scan] allow = [...] entries.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the report to this file instead of stdout.",
)
def scan(
    paths: tuple[str, ...],
    fmt: str,
    as_json: bool,
    strict: bool,
    allow: tuple[str, ...],
    allow_config: str | None,
    output: str | None,
) -> None:
    """Scan model files, directories and archives without loading them.

    \b
    Exit codes: 0 clean, 1 unsafe content found, 2 unscannable file or usage error.
    A file that is unscannable and also has findings exits 2 (never clean).
    """
    from modelseal import __version__
    from modelseal.errors import OutputError
    from modelseal.scanning import scan as run_scan

    if as_json and fmt == "sarif":
        raise click.UsageError("--json and --format sarif are exclusive")
    report = run_scan(paths, allow=allow, allow_config=allow_config, strict=strict)
    if as_json or fmt == "json":
        text = json.dumps(report.to_dict(), indent=2)
    elif fmt == "sarif":
        from modelseal.scanning.sarif import to_sarif

        text = json.dumps(to_sarif(report, version=__version__), indent=2)
    else:
        from modelseal.scanning.text import to_text

        text = to_text(report)
    if output is not None:
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as exc:
            raise OutputError(
                f"cannot write {output!r}: {exc.strerror}",
                hint="choose a writable path for --output",
            ) from None
    else:
        click.echo(text)
        if as_json or fmt != "text":  # stdout holds the report: an error adds no second document
            from modelseal.cli.common import JSON_PRINTED

            JSON_PRINTED.append(True)
    _conclude(report)


def _conclude(report: ScanReport) -> None:
    """Turn a non-clean report into the one-line error and exit code the CLI prints."""
    from modelseal.errors import UnsafeModelError, UnscannableError

    if report.unscannable:
        bad = sum(1 for f in report.files if f.unscannable)
        raise UnscannableError(
            f"{bad} file(s) could not be scanned completely ({len(report.findings)} finding(s))",
            hint="treat them as unsafe: do not load them",
        )
    if report.findings:
        worst = report.worst()
        label = worst.label if worst is not None else "unknown"
        raise UnsafeModelError(
            f"unsafe content found: {len(report.findings)} finding(s), worst {label}",
            hint="do not load these files; see the report above",
        )
