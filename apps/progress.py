"""A dependency-free progress bar for long loops (training epochs, spiking evaluations).

On a terminal the bar redraws one line in place::

    ANN epoch 3/15  [########........]  12/23 batches  loss 0.412  1.9 s

When stderr is not a terminal (CI logs, files) it prints a plain line at every quarter (and
once more when figures are added to a finished bar, e.g. the validation score), so logs stay
short.  ``quiet=True`` silences it.
"""

from __future__ import annotations

import sys
import time


class Bar:
    """``with Bar(total, "label") as bar: ... bar.update(1, loss=0.3)``."""

    def __init__(self, total: int, label: str, *, unit: str = "", quiet: bool = False, stream=None, width: int = 24):
        self.total, self.label, self.unit, self.width = max(int(total), 1), label, unit, width
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done, self.info, self.t0 = 0, {}, time.perf_counter()
        self._next_quarter = 1

    def update(self, n: int = 1, **info) -> None:
        """Advance by ``n`` and show ``info`` (name=value pairs) beside the bar."""
        self.done = min(self.done + n, self.total)
        self.info.update(info)
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()
        elif n == 0 and self.done >= self.total:  # final figures added to a finished bar
            self.stream.write(self._line() + "\n")
        elif self.done * 4 >= self._next_quarter * self.total:
            while self.done * 4 >= self._next_quarter * self.total:
                self._next_quarter += 1
            self.stream.write(self._line() + "\n")

    def _line(self) -> str:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        extras = "  ".join(f"{k} {_fmt(v)}" for k, v in self.info.items())
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.label}  [{bar}]  {self.done}/{self.total}{unit}  {extras}  "
                f"{time.perf_counter() - self.t0:.1f} s").rstrip()

    def close(self) -> None:
        if not self.quiet and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
