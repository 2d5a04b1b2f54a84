"""How many password guesses a login name gets, and from where: failed logins slow down the address they came from,
and a ceiling per name bounds what all addresses together may try in an hour, while the name's owner is never kept
out for longer than a bounded delay.

- Per name and address: the first ``free_failures`` failures cost nothing; after them each further try waits for a
  delay that doubles with each failure (1 s, 2 s, 4 s, ...) up to ``max_delay``. Tries made while waiting are
  answered at once and never checked, and they do not lengthen the wait: someone sharing the address (every browser
  behind a WSL2 desktop's gateway, a lab's NAT) gets in with the right password once the delay is over.
- Per name, all addresses together: at most ``per_hour`` checked failures in the last hour. Past that, addresses
  the name never logged in from wait until the oldest failure is an hour old; the addresses it did log in from
  (``known_for``, 30 days) do not, so that guesses from many addresses cannot lock the owner out where they log in.
- Unknown names are counted like known ones: the answers never tell which names exist.

In memory, per hub process: a hub restart forgets the counts (and the known addresses), which costs an attacker a
restart per hour to gain ``free_failures`` more guesses per address. The tables are bounded (``max_entries``).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

HOUR = 3600.0


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class _Name:
    failures: deque = field(default_factory=deque)  # times of checked failures, the last hour's
    known: dict = field(default_factory=dict)  # address -> time of its last successful login


class LoginThrottle:
    def __init__(self, free_failures: int = 5, max_delay: float = 600.0, per_hour: int = 60,
                 known_for: float = 30 * 86400.0, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.free_failures, self.max_delay, self.per_hour = free_failures, max_delay, per_hour
        self.known_for, self.max_entries, self.clock = known_for, max_entries, clock
        self._pairs: OrderedDict[tuple[str, str], _Failures] = OrderedDict()
        self._names: OrderedDict[str, _Name] = OrderedDict()

    def wait(self, name: str, address: str) -> float:
        """Seconds before ``address`` may try ``name`` again (0: now). A try made while this is above 0 is refused
        without looking at the password."""
        now = self.clock()
        waits = [0.0]
        pair = self._pairs.get((name, address))
        if pair and pair.count >= self.free_failures:
            delay = min(self.max_delay, 2.0 ** (pair.count - self.free_failures))
            waits.append(pair.last + delay - now)
        record = self._names.get(name)
        if record and self.per_hour:
            self._forget_old(record, now)
            if len(record.failures) >= self.per_hour and address not in record.known:
                waits.append(record.failures[len(record.failures) - self.per_hour] + HOUR - now)
        return max(waits)

    def failed(self, name: str, address: str) -> None:
        """A password was checked and was wrong (or the name does not exist)."""
        now = self.clock()
        pair = self._pairs.pop((name, address), None) or _Failures()
        if now - pair.last > HOUR + self.max_delay:
            pair.count = 0  # quiet for over an hour: a fresh start
        pair.count += 1
        pair.last = now
        self._pairs[(name, address)] = pair
        record = self._record(name)
        record.failures.append(now)
        self._forget_old(record, now)
        self._bound(now)

    def succeeded(self, name: str, address: str) -> None:
        """``name`` logged in from ``address``: its count there starts again, and the address is known for it."""
        self._pairs.pop((name, address), None)
        record = self._record(name)
        record.known[address] = self.clock()
        if len(record.known) > 20:  # the name's 20 most recent places
            del record.known[min(record.known, key=record.known.get)]

    def _record(self, name: str) -> _Name:
        record = self._names.pop(name, None) or _Name()
        self._names[name] = record  # most recently used last
        return record

    def _forget_old(self, record: _Name, now: float) -> None:
        while record.failures and now - record.failures[0] >= HOUR:
            record.failures.popleft()
        for address in [a for a, at in record.known.items() if now - at > self.known_for]:
            del record.known[address]

    def _bound(self, now: float) -> None:
        """Drop what no longer counts, then the least recently used, past ``max_entries``: a flood of made-up names
        must not grow the hub's memory without end."""
        for table, stale in ((self._pairs, lambda f: now - f.last > HOUR + self.max_delay),
                             (self._names, lambda r: not r.failures and not r.known)):
            if len(table) <= self.max_entries:
                continue
            for key in [key for key, value in table.items() if stale(value)]:
                del table[key]
            while len(table) > self.max_entries:
                table.popitem(last=False)
