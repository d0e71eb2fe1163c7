"""Stopping cleanly on SIGTERM or SIGINT (preemption, Ctrl-C).

The handler only records the request; the training loop checks it between compiled
calls, writes a checkpoint at the step it reached and exits normally. In a
multi-process run all processes must stop at the same step, so the request is
agreed on with a collective: any process that was signalled stops them all.
"""

import signal
import types

from bn_repro import distributed

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Context manager that turns SIGTERM/SIGINT into a flag for the training loop."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means "now"
        self.signal_name = signal.Signals(signum).name

    def agreed(self) -> bool:
        """True on every process if any process has been asked to stop."""
        return distributed.any_process(self.signal_name is not None)
