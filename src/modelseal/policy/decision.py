"""What the gate decided, check by check: typed, and what its evidence is made of."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CheckName = Literal["signature", "scan", "metrics", "environment", "rules"]


class CheckResult(BaseModel):
    """One check of the policy: passed or not, each line saying what was required and what was
    found, and the details that go into the evidence."""

    model_config = ConfigDict(frozen=True)

    check: CheckName
    passed: bool
    lines: list[str] = Field(description="What was required and what was measured.")
    details: dict[str, Any] = Field(default_factory=dict)


class GateDecision(BaseModel):
    """The gate's decision for one model digest under one policy digest."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    model: str = Field(description="The model path or registry reference that was gated.")
    digest: str = Field(description="The model's manifest root digest (sha256, hex).")
    policy: str = Field(description="The policy's name.")
    policy_digest: str = Field(description="SHA-256 of the policy file.")
    checks: list[CheckResult]
    time: str

    @property
    def failures(self) -> list[str]:
        """Every line of every failed check."""
        return [line for c in self.checks if not c.passed for line in c.lines]
