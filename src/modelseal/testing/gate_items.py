"""The gate as pytest items: ``pytest --modelseal-policy POLICY --modelseal-model REF`` adds one
test per check of the policy (signature, scan, then metrics, environment and rules when the
policy has them), so any CI that reads JUnit XML (``--junitxml``) shows each check.

The gate runs once, when the first of these items runs; each item passes or fails with its
check's lines. A model given by path needs ``--modelseal-signature``; a registry reference
(``NAME[:VERSION|@ALIAS]``) is read from the registry ``MODELSEAL_*`` configures (the server
in ``MODELSEAL_SERVER`` with ``MODELSEAL_TOKEN``, else the embedded store in
``MODELSEAL_HOME``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from modelseal.policy.decision import GateDecision
    from modelseal.policy.document import LoadedPolicy

OPTIONS = ("policy", "model", "signature", "data", "baseline", "environment")


def add_options(parser: pytest.Parser) -> None:
    """The ``--modelseal-*`` options of the gate."""
    group = parser.getgroup("modelseal", "modelseal gate (one test per policy check)")
    helps = {
        "policy": "Gate policy (YAML): turns each of its checks into a test item.",
        "model": "The model: a path (with --modelseal-signature) or NAME[:VERSION|@ALIAS].",
        "signature": "The signature bundle of a model given by path.",
        "data": "Validation dataset for the policy's metrics (CSV, Parquet, NPZ).",
        "baseline": "Registry version the metrics are compared with.",
        "environment": "Training environment of a model given by path (modelseal env capture).",
    }
    for name in OPTIONS:
        group.addoption(f"--modelseal-{name}", dest=f"modelseal_{name}", default=None,
                        metavar=name.upper(), help=helps[name])  # fmt: skip


class GateRun:
    """The one gate run the items share (made on first use, kept for the session)."""

    def __init__(self, config: pytest.Config, policy: LoadedPolicy) -> None:
        self.config = config
        self.policy = policy
        self._decision: GateDecision | None = None
        self._error: str | None = None

    def decision(self) -> GateDecision:
        """The decision, or :class:`GateError` if the gate could not run (unusable input)."""
        if self._error is not None:
            raise GateError(self._error)
        if self._decision is None:
            from modelseal.errors import ModelsealError

            try:
                self._decision = self._run()
            except ModelsealError as exc:
                self._error = exc.one_line()
                raise GateError(self._error) from None
        return self._decision

    def _run(self) -> GateDecision:
        from modelseal.policy.gate import gate, is_reference

        option = self.config.getoption
        model = str(option("modelseal_model"))
        backend = _open_backend() if is_reference(model) else None
        try:
            return gate(model, policy=self.policy, signature=option("modelseal_signature"),
                        data=option("modelseal_data"), baseline=option("modelseal_baseline"),
                        environment=option("modelseal_environment"),
                        backend=backend)  # fmt: skip
        finally:
            if backend is not None:
                backend.close()


class GateError(Exception):
    """The gate could not run: every item reports the same one line."""


class GateCheck(pytest.Item):
    """One check of the policy, judged by the shared gate run."""

    def __init__(self, *, check: str, run: GateRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.run = run

    def runtest(self) -> None:
        """Pass when the gate's decision says this check passed."""
        decision = self.run.decision()
        found = [c for c in decision.checks if c.check == self.check]
        if not found:
            raise CheckFailed([f"{self.check}: the gate did not judge this check"])
        if not found[0].passed:
            raise CheckFailed(found[0].lines)
        for line in found[0].lines:  # shown with -rA and in the JUnit XML's system-out
            print(line)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The check's lines (or the gate's one-line error), not a traceback."""
        if isinstance(excinfo.value, CheckFailed):
            return "\n".join(excinfo.value.lines)
        if isinstance(excinfo.value, GateError):
            return f"the gate could not run: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        """Where the item comes from: the policy file."""
        return str(self.run.config.getoption("modelseal_policy")), None, f"gate: {self.check}"


class CheckFailed(Exception):
    """A check of the gate failed."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def add_items(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put one item per check of ``--modelseal-policy`` in front of the collected tests."""
    policy_path = config.getoption("modelseal_policy")
    if not policy_path:
        return
    if not config.getoption("modelseal_model"):
        raise pytest.UsageError("--modelseal-policy needs --modelseal-model (a path or a ref)")
    from modelseal.errors import ModelsealError
    from modelseal.policy.document import load_policy

    try:
        loaded = load_policy(policy_path)
    except ModelsealError as exc:
        raise pytest.UsageError(f"modelseal: {exc.one_line()}") from None
    run = GateRun(config, loaded)
    checks = ["signature", "scan"]
    section = loaded.policy
    checks += [name for name in ("metrics", "environment") if getattr(section, name) is not None]
    if section.rules:
        checks.append("rules")
    gate_items = [GateCheck.from_parent(session, name=f"modelseal-gate[{c}]", check=c, run=run)
                  for c in checks]  # fmt: skip
    items[:0] = gate_items


def _open_backend() -> Any:
    from modelseal.registry.config import RegistryConfig

    config = RegistryConfig.resolve()
    if config.server:
        from modelseal.client import Client

        return Client(config.server, token=config.token)
    from modelseal.registry.backend import LocalBackend

    return LocalBackend.open(config)
