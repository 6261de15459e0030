"""Stopping rules, as MLPerf LoadGen has them: minimums that must all be met, maximums that end the run."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StopRule:
    min_frames: int
    max_frames: float  # math.inf when only the durations bound the run
    min_seconds: float = 0.0
    max_seconds: float = math.inf
    until_max: bool = False  # go on past the minimums until a maximum ends the run (they only make it valid)

    def should_stop(self, frames: int, elapsed_s: float) -> bool:
        if frames >= self.max_frames or elapsed_s >= self.max_seconds:
            return True
        return not self.until_max and frames >= self.min_frames and elapsed_s >= self.min_seconds

    def describe(self) -> str:
        """The rule in words: "100 pairs", "at least 100 pairs and 60 s, at most 120 s"."""
        if self.until_max and math.isfinite(self.max_frames):
            text = f"up to {int(self.max_frames)} pairs"
        elif self.max_frames == self.min_frames and self.min_seconds == 0:
            text = f"{self.min_frames} pairs"
        else:
            text = f"at least {self.min_frames} pairs" + (f" and {self.min_seconds:g} s" if self.min_seconds else "")
        return text + (f", at most {self.max_seconds:g} s" if math.isfinite(self.max_seconds) else "")

    def shortfalls(self, frames: int, elapsed_s: float) -> list[str]:
        """Why a finished run does not meet its minimums (empty: it does)."""
        reasons = []
        if frames < self.min_frames:
            reasons.append(f"ran {frames} frame pairs, fewer than the minimum {self.min_frames}")
        if elapsed_s < self.min_seconds:
            reasons.append(f"ran {elapsed_s:.2f} s, shorter than the minimum {self.min_seconds:g} s")
        return reasons


def stop_rule(num_inputs: int, min_duration: float | None, max_duration: float | None) -> StopRule:
    """Without durations: exactly ``num_inputs``. With a minimum duration, ``num_inputs`` becomes a
    minimum count as well and only the maximum duration caps the run."""
    max_seconds = math.inf if max_duration is None else max_duration
    if min_duration is None:
        return StopRule(num_inputs, num_inputs, 0.0, max_seconds)
    return StopRule(num_inputs, math.inf, min_duration, max_seconds)
