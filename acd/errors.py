"""The two error families of the ACD (DESIGN.md, "Style" 4).

`AcdConfigError` means a queue or agent definition is wrong; `AcdUsageError` means
the code driving the engine misused it (unknown call, answered twice, an agent
state change the transition table does not allow).
"""

from __future__ import annotations


class AcdConfigError(ValueError):
    """A queue or agent configuration is invalid; the message names the field."""


class AcdUsageError(RuntimeError):
    """The engine was called in a way its contract does not allow."""
