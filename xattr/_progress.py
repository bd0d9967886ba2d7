"""A progress bar for long loops of model evaluations: tqdm when installed, else a one-line counter on stderr."""
from __future__ import annotations

import sys
import time


# -- shared plumbing -----------------------------------------------------------------------------
class Progress:
    """A progress bar: tqdm when installed, else a one-line counter on stderr; silent when disabled."""

    def __init__(self, total, enabled, desc):
        self.bar, self.total, self.done, self.enabled, self.desc = None, total, 0, bool(enabled), desc
        self._last = 0.0
        if self.enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="eval")
            except ImportError:
                pass

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (time.monotonic() - self._last > 0.5 or self.done >= self.total):
            self._last = time.monotonic()
            sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total} evaluations")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
