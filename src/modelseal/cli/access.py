"""``modelseal user|token|role``: principals, API tokens and role grants."""

from __future__ import annotations

from typing import Any

import click

from modelseal.cli.common import emit_json
from modelseal.registry.cli_support import store_options, with_backend


@click.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.argument("name")
@store_options
@with_backend
def user_create(backend: Any, name: str) -> None:
    """Create user NAME (no roles until granted)."""
    backend.create_user(name)
    click.echo(f"created user {name}")


@user.command("disable")
@click.argument("name")
@store_options
@with_backend
def user_disable(backend: Any, name: str) -> None:
    """Disable user NAME: their tokens stop working."""
    backend.disable_user(name)
    click.echo(f"disabled user {name}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
@with_backend
def user_list(backend: Any, as_json: bool) -> None:
    """List users with their roles and tokens (never token values)."""
    users = backend.list_users()
    if as_json:
        emit_json(users)
        return
    for u in users:
        state = " (disabled)" if u["disabled"] else ""
        active = sum(1 for t in u["tokens"] if not t["revoked"])
        click.echo(f"{u['name']}{state}  roles: {', '.join(u['roles']) or '-'}  tokens: {active}")


@click.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("user_name", metavar="USER")
@click.option(
    "--expires-in",
    default="90d",
    show_default=True,
    help="Lifetime (e.g. 12h, 30d, 4w); 'never' for none.",
)
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=str),
    default=None,
    help="Write the token to this file (mode 0600) instead of printing it.",
)
@store_options
@with_backend
def token_create(
    backend: Any, user_name: str, expires_in: str, description: str, output: str | None
) -> None:
    """Create a token for USER. It is shown once: only its hash is stored."""
    from modelseal.registry.cli_support import parse_duration

    lifetime = None if expires_in == "never" else parse_duration(expires_in)
    new = backend.create_token(user_name, lifetime, description)
    if output:
        from modelseal.fsutil import atomic_write

        atomic_write(output, (new.value + "\n").encode("ascii"), mode=0o600, overwrite=False)
        click.echo(f"token {new.id} for {user_name} written to {output}")
    else:
        click.echo(new.value)
        click.echo(f"token {new.id} for {user_name}: store it now, it is not shown again", err=True)


@token.command("revoke")
@click.argument("token_id")
@store_options
@with_backend
def token_revoke(backend: Any, token_id: str) -> None:
    """Revoke the token with id TOKEN_ID (see 'modelseal user list --json')."""
    backend.revoke_token(token_id)
    click.echo(f"revoked token {token_id}")


@click.group()
def role() -> None:
    """Grant and revoke roles."""


@role.command("grant")
@click.argument("user_name", metavar="USER")
@click.argument("role_name", metavar="ROLE")
@click.option(
    "--scope",
    default="*",
    show_default=True,
    help="Model names the grant covers (a glob, e.g. 'fraud-*').",
)
@store_options
@with_backend
def role_grant(backend: Any, user_name: str, role_name: str, scope: str) -> None:
    """Grant ROLE to USER (ROLE: data-scientist, ml-engineer, devops, security-engineer,
    compliance-officer, admin)."""
    backend.grant_role(user_name, role_name, scope)
    click.echo(f"granted {role_name}{'' if scope == '*' else f'[{scope}]'} to {user_name}")


@role.command("revoke")
@click.argument("user_name", metavar="USER")
@click.argument("role_name", metavar="ROLE")
@click.option("--scope", default="*", show_default=True, help="The scope it was granted with.")
@store_options
@with_backend
def role_revoke(backend: Any, user_name: str, role_name: str, scope: str) -> None:
    """Revoke ROLE (with --scope) from USER."""
    backend.revoke_role(user_name, role_name, scope)
    click.echo(f"revoked {role_name}{'' if scope == '*' else f'[{scope}]'} from {user_name}")


@role.command("list")
def role_list() -> None:
    """List the roles and the permissions each carries."""
    from modelseal.access.roles import ROLES

    for name, permissions in ROLES.items():
        click.echo(f"{name}: {', '.join(sorted(permissions))}")
