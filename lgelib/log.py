"""The library's messages: one ``logging`` logger, ``lgelib``, whose lines read ``[lgelib] ...``.

The library only logs; whoever runs it decides what is shown. `show_progress` (called by the ``lgelib`` command and
by `lgelib.run.open_run`, so the chapters show each stage's lines) sends INFO and above to the current standard
output; ``logging.getLogger("lgelib").setLevel(logging.WARNING)`` silences the progress lines.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("lgelib")


class _CurrentStdout(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stdout`` is when a line is logged (a notebook kernel, pytest's
    capture), not the stream of the moment it was made."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ assigns it
        pass


def show_progress() -> None:
    """Show the library's INFO lines on standard output as ``[lgelib] message`` (once; idempotent)."""
    if not any(isinstance(handler, _CurrentStdout) for handler in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("[lgelib] %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False
