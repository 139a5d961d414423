"""Identifier sources: tags, branches and Call-IDs come from here (DESIGN.md style rule 1).

The sans-IO cores take an `IdSource`; production uses `RandomIds`, tests a `CountingIds`.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Protocol

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7


class IdSource(Protocol):
    def token(self) -> str:
        """A fresh, unguessable token (letters and digits only)."""
        ...


class RandomIds:
    def token(self) -> str:
        return secrets.token_hex(8)


class CountingIds:
    """Deterministic ids for tests."""

    def __init__(self, prefix: str = "t") -> None:
        self._prefix = prefix
        self._n = itertools.count(1)

    def token(self) -> str:
        return f"{self._prefix}{next(self._n)}"


def new_branch(ids: IdSource) -> str:
    return MAGIC_COOKIE + ids.token()
