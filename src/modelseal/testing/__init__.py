"""Helpers for testing code that uses modelseal: a pytest plugin (loaded automatically when
modelseal is installed) with fixtures for a key pair, a signer, a temporary registry and
verified loading. See :mod:`modelseal.testing.pytest_plugin`."""
