"""Counting recent failures (sign-ins, join codes) in bounded memory.

A throttle must not become the way to exhaust the server: every key tried (a username, an
address) costs memory, so each kind of key is held in a least-recently-failed order and the
oldest are dropped past a cap. Keys whose failures have all expired are dropped as they are met.
"""

from __future__ import annotations

import time
from collections import OrderedDict

# Keys remembered per kind (usernames, addresses): ~300 bytes each, so ~3 MiB per kind at most.
# Past it the key that failed longest ago is forgotten; reaching it takes thousands of distinct
# usernames or addresses failing within one window, which the per-address limits slow first.
MAX_KEYS = 10_000

# Teaching join codes are 6 characters of 31 (about 887 million codes), so guessing one is only
# a risk at speed. One address may get 20 codes wrong a minute: a class behind one NAT address
# mistyping a few codes is not held up.
JOIN_ADDRESS_FAILURES = 20
# The whole site, whatever the addresses: 120 wrong codes a minute. Guessing without pause for
# a two-hour class (14,400 codes) finds its code with a chance of 1 in 60,000; a class mistyping
# does not come near it. Only a guesser spread over many addresses reaches it, and then every
# join waits until the minute is over (the price of the backstop).
JOIN_SITE_FAILURES = 120
JOIN_WINDOW_S = 60


class FailureWindows:
    """The times of each key's last ``limit`` failures within ``window_s`` seconds, for at most
    ``max_keys`` keys."""

    def __init__(self, limit: int, window_s: float, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._times: OrderedDict[str, tuple[float, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._times)

    def _recent(self, key: str, now: float) -> tuple[float, ...]:
        times = self._times.get(key)
        if times is None:
            return ()
        recent = tuple(t for t in times if t > now - self.window_s)
        if not recent:
            del self._times[key]
        elif len(recent) != len(times):
            self._times[key] = recent
        return recent

    def wait(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        recent = self._recent(key, now)
        if len(recent) < self.limit:
            return 0
        return int(recent[0] + self.window_s - now) + 1

    def failed(self, key: str, now: float | None = None) -> None:
        """Count one failure for ``key``."""
        now = time.monotonic() if now is None else now
        recent = self._recent(key, now)
        self._times[key] = (*recent, now)[-self.limit :]
        self._times.move_to_end(key)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)

    def forget(self, key: str) -> None:
        self._times.pop(key, None)


class JoinThrottle:
    """Wrong teaching join codes, per client address and for the whole site."""

    def __init__(self) -> None:
        self._addresses = FailureWindows(JOIN_ADDRESS_FAILURES, JOIN_WINDOW_S)
        self._site = FailureWindows(JOIN_SITE_FAILURES, JOIN_WINDOW_S, max_keys=1)

    def blocked_for(self, client: str) -> int:
        """Seconds until this address may try a code again (0: now)."""
        return max(self._addresses.wait(client), self._site.wait("site"))

    def failed(self, client: str) -> int:
        """Count one wrong code from ``client``; returns the seconds it is now held for (0: none)."""
        self._addresses.failed(client)
        self._site.failed("site")
        return self.blocked_for(client)
