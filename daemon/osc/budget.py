"""How many reply bytes the OSC server may send: per sender and in all.

UDP senders are not authenticated: a request with a forged source address makes the daemon
answer someone who never asked. A ``/controlroom/state`` request of 24 bytes brings back a
report of several kilobytes, so replies are metered: each sender host, and all senders
together, have a token bucket of reply bytes, refilled at its rate and holding at most one
second's worth. What does not fit is not sent. Loopback senders are not metered: a packet
from the network cannot carry a loopback source address (the kernel drops it), so theirs is
never forged — and ``controlroom ctl`` and local scripts may ask as fast as they like.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable


class _Bucket:
    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = now

    def fill(self, now: float) -> float:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens


class ReplyBudget:
    """Token buckets of reply bytes: one per sender host, one for all of them.

    Args:
        per_sender: bytes/s one host may get (and at most at once).
        total: bytes/s all hosts together may get.
        senders: hosts remembered; the one heard from longest ago is forgotten beyond this
            (a flood from forged addresses cannot grow the table; ``total`` still holds).
        clock: seconds on a steady clock.
        meter_loopback: meter loopback senders too (tests on a machine with loopback only).
    """

    def __init__(
        self,
        per_sender: float,
        total: float,
        senders: int,
        clock: Callable[[], float] = time.monotonic,
        meter_loopback: bool = False,
    ) -> None:
        self._meter_loopback = meter_loopback
        self._per_sender = per_sender
        self._senders = senders
        self._clock = clock
        self._total = _Bucket(total, clock())
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, host: str, size: int) -> bool:
        """Whether ``size`` bytes may go to ``host`` now; if so they are spent."""
        if not self._meter_loopback and _loopback(host):
            return True
        now = self._clock()
        bucket = self._bucket(host, now)
        if bucket.fill(now) < size or self._total.fill(now) < size:
            return False
        bucket.tokens -= size
        self._total.tokens -= size
        return True

    def spend(self, host: str, size: int) -> None:
        """Spend ``size`` bytes for ``host`` that were sent on an estimate (a reply whose size
        is known only once built); the next replies wait until the debt is paid."""
        if not self._meter_loopback and _loopback(host):
            return
        bucket = self._bucket(host, self._clock())
        bucket.tokens -= size
        self._total.tokens -= size

    def _bucket(self, host: str, now: float) -> _Bucket:
        bucket = self._buckets.pop(host, None) or _Bucket(self._per_sender, now)
        self._buckets[host] = bucket  # the most recently heard last
        if len(self._buckets) > self._senders:
            self._buckets.popitem(last=False)
        return bucket

    def __len__(self) -> int:
        """Hosts remembered."""
        return len(self._buckets)


@functools.lru_cache(maxsize=256)  # asked once per reply: a state dump is ~50 replies
def _loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
