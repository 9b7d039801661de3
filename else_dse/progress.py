"""Progress of long work: a tqdm bar on a terminal; without one (logs, CI), one line at every 10%."""

from __future__ import annotations

import sys
from typing import IO, Any


class Progress:
    """``Progress(total, desc)``; ``update(n)`` or ``set(done)``; ``close()``.

    On a terminal (``stream.isatty()``) it is a tqdm bar; otherwise it prints
    ``<desc>: 30% (30/100 <unit>)`` each time another tenth of ``total`` is done, so a log is
    never silent for long. ``enabled=False`` shows nothing.

    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(20, "study", "trial", stream=out)
    >>> for _ in range(20): p.update()
    >>> p.close()
    >>> out.getvalue().splitlines()[:2], len(out.getvalue().splitlines())
    (['study: 10% (2/20 trial)', 'study: 20% (4/20 trial)'], 10)
    """

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool = True,
                 stream: IO[str] | None = None) -> None:
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.done, self._tenths = 0, 0
        self._bar: Any = None
        self.enabled = enabled and self.total > 0
        if self.enabled and _isatty(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=self.stream)

    def update(self, n: int = 1) -> None:
        self.set(self.done + n)

    def set(self, done: int) -> None:
        self.done = min(max(int(done), 0), self.total)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.n = self.done
            self._bar.refresh()
            return
        tenths = self.done * 10 // self.total
        if tenths > self._tenths:
            self._tenths = tenths
            print(f"{self.desc}: {tenths * 10}% ({self.done}/{self.total} {self.unit})", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
