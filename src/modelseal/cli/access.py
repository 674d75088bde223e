"""``modelseal user|token|role``: principals, API tokens and role grants."""

from __future__ import annotations

from typing import Any

import click

from modelseal.cli.common import emit_json, report
from modelseal.cli.store import store_options, with_backend


@click.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def user_create(backend: Any, name: str, as_json: bool) -> None:
    """Create user NAME (no roles until granted)."""
    from modelseal.access.principals import CreateUser

    created = backend.call(CreateUser(name=name))
    report(as_json, created, f"created user {name}")


@user.command("disable")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def user_disable(backend: Any, name: str, as_json: bool) -> None:
    """Disable user NAME: their tokens stop working."""
    from modelseal.access.principals import DisableUser

    done = backend.call(DisableUser(name=name))
    report(as_json, done, f"disabled user {name}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
@with_backend
def user_list(backend: Any, as_json: bool) -> None:
    """List users with their roles and tokens (never token values)."""
    from modelseal.access.principals import ListUsers

    users = backend.call(ListUsers())
    if as_json:
        emit_json(users)
        return
    for u in users:
        state = " (disabled)" if u.disabled else ""
        active = sum(1 for t in u.tokens if not t.revoked)
        click.echo(f"{u.name}{state}  roles: {', '.join(u.roles) or '-'}  tokens: {active}")


@click.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("user_name", metavar="USER")
@click.option(
    "--expires-in",
    default="90d",
    show_default=True,
    help="Lifetime (e.g. 12h, 30d, 4w); at most 366d.",
)
@click.option("--description", default="", help="What the token is for.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=str),
    default=None,
    help="Write the token to this file (mode 0600) instead of printing it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def token_create(
    backend: Any,
    user_name: str,
    expires_in: str,
    description: str,
    output: str | None,
    as_json: bool,
) -> None:
    """Create a token for USER. It is shown once: only its hash is stored."""
    from modelseal.access.principals import CreateToken
    from modelseal.cli.store import parse_duration

    lifetime = parse_duration(expires_in)
    assert lifetime is not None  # the option has a default
    seconds = int(lifetime.total_seconds())
    new = backend.call(
        CreateToken(name=user_name, expires_in_seconds=seconds, description=description)
    )
    if output:
        from modelseal.fsutil import atomic_write

        atomic_write(output, (new.token + "\n").encode("ascii"), mode=0o600, overwrite=False)
        report(as_json, {"id": new.id, "user": user_name, "output": output},
                f"token {new.id} for {user_name} written to {output}")  # fmt: skip
    elif as_json:
        emit_json(new)
    else:
        click.echo(new.token)
        click.echo(f"token {new.id} for {user_name}: store it now, it is not shown again", err=True)


@token.command("revoke")
@click.argument("token_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def token_revoke(backend: Any, token_id: str, as_json: bool) -> None:
    """Revoke the token with id TOKEN_ID (see 'modelseal user list --json')."""
    from modelseal.access.principals import RevokeToken

    done = backend.call(RevokeToken(token_id=token_id))
    report(as_json, done, f"revoked token {token_id}")


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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def role_grant(backend: Any, user_name: str, role_name: str, scope: str, as_json: bool) -> None:
    """Grant ROLE to USER (ROLE: data-scientist, ml-engineer, devops, security-engineer,
    compliance-officer, admin)."""
    from modelseal.access.principals import GrantRole

    done = backend.call(GrantRole(name=user_name, role=role_name, scope=scope))
    report(
        as_json, done, f"granted {role_name}{'' if scope == '*' else f'[{scope}]'} to {user_name}"
    )


@role.command("revoke")
@click.argument("user_name", metavar="USER")
@click.argument("role_name", metavar="ROLE")
@click.option("--scope", default="*", show_default=True, help="The scope it was granted with.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_options
@with_backend
def role_revoke(backend: Any, user_name: str, role_name: str, scope: str, as_json: bool) -> None:
    """Revoke ROLE (with --scope) from USER."""
    from modelseal.access.principals import RevokeRole

    done = backend.call(RevokeRole(name=user_name, role=role_name, scope=scope))
    scoped = f"{role_name}{'' if scope == '*' else f'[{scope}]'}"
    report(as_json, done, f"revoked {scoped} from {user_name}")


@role.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the roles as JSON.")
def role_list(as_json: bool) -> None:
    """List the roles and the permissions each carries."""
    from modelseal.access.roles import ROLES

    if as_json:
        emit_json({name: sorted(permissions) for name, permissions in ROLES.items()})
        return
    for name, permissions in ROLES.items():
        click.echo(f"{name}: {', '.join(sorted(permissions))}")
