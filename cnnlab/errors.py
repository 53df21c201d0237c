"""Errors that reach a user as one line: each message names the problem and the fix."""

from __future__ import annotations


class CnnlabError(ValueError):
    """Bad input from a user; the CLI prints its message alone and exits with status 2."""


class ShapeError(CnnlabError):
    """A layer configuration that yields no valid shape (kernel too large, negative size...)."""
