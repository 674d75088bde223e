"""Serving verified models: the Open Inference Protocol v2 over models that passed every check."""
