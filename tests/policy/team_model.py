"""A team's own estimator class, importable by name, on no built-in allow-list."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression


class TeamModel(LogisticRegression):  # type: ignore[misc]
    """A scikit-learn classifier under the team's own name."""
