"""A server clock that tests move forward, so no test waits out a real threshold."""

from __future__ import annotations

from datetime import datetime, timedelta

from api.services import utc_now


class FakeClock:
    """Real time plus an offset that only :meth:`advance` changes.

    Passed to ``make_server(clock=...)``, it is the server's ``Services.clock``:
    requests, webhooks, the sweeper, retention and the outbox all read it. It
    keeps running with real time (consecutive writes keep distinct, ordered
    timestamps, as in production) and jumps when a test says the customer has
    waited: ``clock.advance(300)`` is five minutes later at once. Time never goes
    back, so pick thresholds far above the test's own running time and cross
    them with ``advance``.
    """

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, seconds: float) -> datetime:
        """Moves the clock ``seconds`` forward; returns the new now."""
        assert seconds >= 0, "time only moves forward"
        self.offset += timedelta(seconds=seconds)
        return self()
