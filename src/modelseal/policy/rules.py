"""Custom rules: CEL expressions over the gate's context, for what the fixed checks do not cover.

The context (documented in docs/gate.md) holds data only, never functions: ``model`` (path or
reference, digest, signer), ``metadata`` (the version's registry metadata), ``scan`` (status and
findings), ``metrics`` (name -> value, and ``baseline``), ``environment`` (``trained``,
``deployed``) and ``checks`` (name -> passed). A rule that does not compile makes the policy
unusable (exit 2); one that cannot be evaluated, or is not a boolean, fails (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelseal.errors import InputError
from modelseal.policy.decision import CheckResult
from modelseal.policy.document import CustomRule


def compile_rules(rules: list[CustomRule]) -> list[tuple[CustomRule, Any]]:
    """Each rule with its compiled program; :class:`InputError` names a rule that does not
    compile."""
    import cel

    compiled: list[tuple[CustomRule, Any]] = []
    for index, rule in enumerate(rules):
        try:
            compiled.append((rule, cel.compile(rule.expression)))
        except (ValueError, TypeError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"policy rules[{index}] ({rule.name}): the expression does not compile: {first}",
                hint="fix the CEL expression (see docs/gate.md)",
            ) from None
    return compiled


def judge(compiled: list[tuple[CustomRule, Any]], context: Mapping[str, Any]) -> CheckResult:
    """Evaluate every rule; each false, failing or non-boolean rule is a line."""
    lines: list[str] = []
    failed = False
    for rule, program in compiled:
        try:
            value = program.execute(dict(context))
        except Exception as exc:  # any evaluation error: the rule does not hold
            failed = True
            lines.append(
                f"rules: {rule.name}: could not be evaluated "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
            continue
        if value is True:
            lines.append(f"rules: {rule.name}: holds")
        else:
            failed = True
            why = rule.message or f"required {rule.expression!r} to be true; got {value!r}"
            lines.append(f"rules: {rule.name}: {why}")
    if not compiled:
        lines.append("rules: none in the policy")
    return CheckResult(
        check="rules", passed=not failed, lines=lines, details={"rules": len(compiled)}
    )
