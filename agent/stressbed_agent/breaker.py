"""A circuit breaker for the downstream sink: closed -> open -> half-open -> closed."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class State(enum.Enum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``reset_s`` lets one trial through
    (half-open); a success closes it, a failure opens it again."""

    def __init__(
        self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self.clock = clock
        self.state = State.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.on_change: Callable[[State], None] = lambda state: None

    def allow(self) -> bool:
        if self.state is State.OPEN and self.clock() - self.opened_at >= self.reset_s:
            self._move(State.HALF_OPEN)
        return self.state is not State.OPEN

    def success(self) -> None:
        self.failures = 0
        if self.state is not State.CLOSED:
            self._move(State.CLOSED)

    def failure(self) -> None:
        self.failures += 1
        if self.state is State.HALF_OPEN or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._move(State.OPEN)

    def _move(self, state: State) -> None:
        self.state = state
        self.on_change(state)
