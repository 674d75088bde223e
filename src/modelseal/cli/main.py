"""The ``modelseal`` command: a thin skin over the Python API.

Sub-commands live one group per module and are imported only when invoked, so ``--help`` and
start-up stay fast. Every failure ends in one line on stderr and a documented exit code.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import click

from modelseal.errors import EXIT_USAGE, ModelsealError

# command name -> (module, attribute, one-line help shown by --help without importing it).
# Commands whose module is not part of this installation are not listed.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "keygen": ("modelseal.cli.keys", "keygen", "Generate a signing key pair."),
    "digest": ("modelseal.cli.digest", "digest", "Hash a model and print its root digest."),
    "sign": ("modelseal.cli.sign", "sign", "Sign a model (OpenSSF Model Signing bundle)."),
    "verify": ("modelseal.cli.verify", "verify", "Verify a model against its signature."),
    "scan": ("modelseal.cli.scan", "scan", "Scan model files for malicious content."),
    "load-check": ("modelseal.cli.load", "load_check", "Verify, scan and load a model; report it."),
    "fingerprint": ("modelseal.cli.load", "fingerprint", "Digest of a model's weights."),
    "encrypt": ("modelseal.cli.crypto", "encrypt", "Encrypt a model file or directory."),
    "decrypt": ("modelseal.cli.crypto", "decrypt", "Decrypt a model file or directory."),
    "keys": ("modelseal.cli.crypto", "keys", "Key-encryption keys: create, rotate."),
    "registry": ("modelseal.cli.registry", "registry", "Run or manage the model registry."),
    "push": ("modelseal.cli.registry", "push", "Publish a signed model version."),
    "pull": ("modelseal.cli.registry", "pull", "Download and verify a model version."),
    "alias": ("modelseal.cli.registry", "alias", "Move an alias (staging, production, ...)."),
    "models": ("modelseal.cli.registry", "models", "List models."),
    "versions": ("modelseal.cli.registry", "versions", "List a model's versions."),
    "audit": ("modelseal.cli.audit", "audit", "Verify or export the audit trail."),
    "user": ("modelseal.cli.access", "user", "Manage users."),
    "token": ("modelseal.cli.access", "token", "Manage API tokens."),
    "role": ("modelseal.cli.access", "role", "Grant and revoke roles."),
    "gate": ("modelseal.cli.gate", "gate", "Check a model against a policy before production."),
    "attest": ("modelseal.cli.gate", "attest", "Verify, attach and list gate decisions."),
    "env": ("modelseal.cli.gate", "environment", "Capture a Python environment for the gate."),
    "bom": ("modelseal.cli.bom", "bom", "Write a CycloneDX ML-BOM of a verified model."),
    "serve": ("modelseal.cli.serve", "serve", "Serve verified models (Open Inference Protocol)."),
}


def _available(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(COMMANDS[name][0]) is not None


EXIT_INTERNAL = 3


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The sub-commands this installation has."""
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return sub-command ``cmd_name`` (``None`` if unknown)."""
        spec = COMMANDS.get(cmd_name)
        if spec is None or not _available(cmd_name):
            return None
        command: click.Command | None = getattr(import_module(spec[0]), spec[1], None)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the sub-commands with their one-line help, without importing them."""
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelseal", prog_name="modelseal")
def cli() -> None:
    """modelseal: seal, scan and verify machine-learning models.

    \b
    Exit codes: 0 success (verified, clean), 1 verification failed or unsafe
    content found, 2 usage or input error, 3 internal error (a bug: please report it).
    """


# Options that take several values after one flag (``--trust-anchor a.pem b.pem``).
GREEDY_OPTIONS = frozenset({"--certificate-chain", "--trust-anchor"})


def expand_greedy(argv: list[str]) -> list[str]:
    """Rewrite ``--opt a b`` as ``--opt a --opt b`` for :data:`GREEDY_OPTIONS`."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in GREEDY_OPTIONS:
            first = True
            while i < len(argv) and not argv[i].startswith("-"):
                if not first:
                    out.append(arg)
                out.append(argv[i])
                first = False
                i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; never lets a traceback reach the user unless MODELSEAL_DEBUG is set. With
    ``--json`` (or ``--format json``) an error is also a JSON object on stdout."""
    from modelseal.cli.common import JSON_PRINTED

    JSON_PRINTED.clear()
    args = expand_greedy(list(sys.argv[1:] if argv is None else argv))
    wants_json = _wants_json(args)
    try:
        rv = cli.main(args=args, prog_name="modelseal", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        return _fail("aborted", 130, "aborted", wants_json)
    except click.ClickException as exc:
        return _fail(_click_message(exc), EXIT_USAGE, "usage", wants_json)
    except ModelsealError as exc:
        from modelseal.cli.hints import one_line

        return _fail(one_line(exc), exc.exit_code, exc.code, wants_json, exc)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, "interrupted", wants_json)
    except (RecursionError, UnicodeError, OSError) as exc:  # hostile or broken input
        if os.environ.get("MODELSEAL_DEBUG"):
            raise
        from modelseal.cli.hints import one_line

        error = input_error(exc)
        return _fail(one_line(error), error.exit_code, error.code, wants_json, error)
    except Exception as exc:  # a bug: one line, not a traceback
        if os.environ.get("MODELSEAL_DEBUG"):
            raise
        if isinstance(exc, ModuleNotFoundError):  # an optional package is not installed
            from modelseal.cli.hints import missing_package

            line = missing_package(exc)
            if line is not None:
                return _fail(line, EXIT_USAGE, "missing-package", wants_json)
        message = (
            f"internal error: {type(exc).__name__}: {exc}; "
            "rerun with MODELSEAL_DEBUG=1 and report it"
        )
        return _fail(message, EXIT_INTERNAL, "internal", wants_json)
    # In non-standalone mode click returns the code a command passed to ``ctx.exit(n)``.
    return rv if isinstance(rv, int) else 0


def input_error(exc: RecursionError | UnicodeError | OSError) -> ModelsealError:
    """The input error (exit 2) for an exception a command let through from its input: a
    document nested too deeply for a parser, text or a file name that is not UTF-8, or a file
    system error on a path the user gave (too long, not permitted, not a regular file...)."""
    from modelseal.errors import InputError

    if isinstance(exc, RecursionError):
        return InputError(
            "an input is nested too deeply to read",
            hint="check the files given (a hostile document may be nested this way)",
        )
    if isinstance(exc, UnicodeError):
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return InputError(
            f"a file name or text is not valid UTF-8 ({reason})",
            hint="rename the file or fix the text",
        )
    where = f"{os.fsdecode(exc.filename)!r}: " if exc.filename is not None else ""
    return InputError(
        f"{where}{exc.strerror or exc}", hint="check the path, its type and its permissions"
    )


def _wants_json(args: list[str]) -> bool:
    for i, arg in enumerate(args):
        if arg == "--":
            return False
        if arg == "--json" or arg == "--format=json":
            return True
        if arg == "--format" and i + 1 < len(args) and args[i + 1] == "json":
            return True
    return False


def _fail(
    line: str, code: int, kind: str, wants_json: bool, error: ModelsealError | None = None
) -> int:
    """Print the one error line on stderr (and, for --json, the error object on stdout)."""
    from modelseal.cli.common import JSON_PRINTED

    _say(line)
    if wants_json and not JSON_PRINTED:
        import json

        body: dict[str, Any] = {"code": kind, "message": line, "exit_code": code}
        if error is not None:
            from modelseal.cli.hints import cli_hint

            body.update(type=type(error).__name__, message=error.message, hint=cli_hint(error),
                        reasons=[r.to_dict() for r in getattr(error, "reasons", ())])  # fmt: skip
        click.echo(json.dumps({"error": body}, indent=2, sort_keys=True))
    return code


def _click_message(exc: click.ClickException) -> str:
    message = exc.format_message().rstrip(".")
    if isinstance(exc, click.UsageError):
        command = exc.ctx.command_path if exc.ctx is not None else "modelseal"
        return f"{message}; see '{command} --help'"
    return message


def _say(message: str) -> None:
    click.echo(f"modelseal: error: {printable(message)}", err=True)


def printable(text: str) -> str:
    """``text`` with every character that is not printable (newlines, other control and format
    characters, lone surrogates from undecodable names) escaped, so that an error quoting a
    hostile argument stays one line and cannot move the terminal's cursor."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def run(argv: list[str] | None = None) -> Any:
    """Entry point for ``python -m modelseal``."""
    sys.exit(main(argv))
