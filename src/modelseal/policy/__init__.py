"""The pre-deployment gate: a policy (who signed, what the scan found, the metrics reached, the
environment, custom rules) checked against one exact model, and a signed decision as evidence.

:func:`modelseal.policy.gate.gate` runs it; :mod:`modelseal.policy.evidence` writes and verifies
the in-toto attestations the registry requires before it moves a protected alias.
"""
