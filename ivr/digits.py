"""The digit-timing model shared by the call driver and the simulator.

Timeline of one collection (all times in seconds, passed in by the caller):

* The first-digit timer starts when the prompt finishes, or at once when there
  is no prompt. While a prompt plays no timer runs.
* A key pressed while a barge-in prompt plays is kept and stops the prompt
  (``stop_prompt``); while a prompt without barge-in plays it is discarded.
* Every kept key restarts the inter-digit timer.
* A terminator key ends input at once; it is not part of the digits.
* Reaching ``max_digits`` ends input at once (reason 'max').
* A timer expiring ends input with reason 'timeout', keeping the digits so far.

Deciding whether the digits are acceptable (min_digits, validation) is the
interpreter's job, not this one.
"""

from __future__ import annotations

from .commands import DTMF_KEYS, DigitSpec, DigitsResult
from .diagnostics import UsageError


class DigitCollector:
    """One collection of DTMF keys, sans-IO: feed keys and timer expiries with ``now``."""

    def __init__(
        self,
        spec: DigitSpec,
        *,
        now: float,
        prompt_playing: bool,
        barge_in: bool,
        typeahead: str = "",
    ) -> None:
        self.spec = spec
        self.barge_in = barge_in
        self.digits = ""
        self.discarded = 0
        self.result: DigitsResult | None = None
        self._prompt_playing = prompt_playing
        self._stop_prompt = False
        self._deadline: float | None = None if prompt_playing else now + spec.first_digit_timeout
        for key in typeahead:
            # keys pressed before this collection began count as a barge-in
            if self.result is None:
                self._accept(key, now)

    @property
    def stop_prompt(self) -> bool:
        """True once a key barged in: the driver stops the prompt."""
        return self._stop_prompt

    @property
    def prompt_playing(self) -> bool:
        return self._prompt_playing

    def prompt_finished(self, now: float) -> None:
        """The prompt ended (or was stopped); starts the first-digit timer if no key came yet."""
        if not self._prompt_playing:
            return
        self._prompt_playing = False
        if self.result is None and not self.digits:
            self._deadline = now + self.spec.first_digit_timeout

    def on_digit(self, digit: str, now: float) -> DigitsResult | None:
        """Feed one key; returns the result when input is complete."""
        if self.result is not None:
            raise UsageError("digit after the collection completed; buffer it for the next one")
        if len(digit) != 1 or digit not in DTMF_KEYS:
            raise UsageError(f"not a DTMF key: {digit!r}")
        if self._prompt_playing and not self.barge_in:
            self.discarded += 1
            return None
        return self._accept(digit, now)

    def _accept(self, digit: str, now: float) -> DigitsResult | None:
        if self._prompt_playing:
            self._prompt_playing = False
            self._stop_prompt = True
        if digit in self.spec.terminators:
            return self._finish("terminator", digit)
        self.digits += digit
        if len(self.digits) >= self.spec.max_digits:
            return self._finish("max")
        self._deadline = now + self.spec.inter_digit_timeout
        return None

    def next_deadline(self) -> float | None:
        """When ``on_timer`` should be called next, or None (prompt playing / complete)."""
        return None if self.result is not None else self._deadline

    def on_timer(self, now: float) -> DigitsResult | None:
        """A timer fired; returns a 'timeout' result if the deadline has passed."""
        if self.result is not None or self._deadline is None or now < self._deadline:
            return None
        return self._finish("timeout")

    def _finish(self, reason: str, terminator: str | None = None) -> DigitsResult:
        self._deadline = None
        self.result = DigitsResult(self.digits, terminator, reason)
        return self.result
