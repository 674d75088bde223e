"""Command-line skins over the Python API: parse, call, render. No logic of their own."""
