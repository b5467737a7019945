"""Reply budgets: token buckets of bytes per sender host and in all, on a clock the test turns."""

from __future__ import annotations

from controlroom.daemon.osc.budget import ReplyBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_sender_gets_its_rate_per_second_and_no_more_at_once():
    clock = Clock()
    budget = ReplyBudget(1000, 10_000, 8, clock=clock)
    assert sum(budget.take("10.0.0.2", 100) for _ in range(30)) == 10
    clock.now = 0.5
    assert sum(budget.take("10.0.0.2", 100) for _ in range(30)) == 5
    clock.now = 100.0  # a long silence refills one second's worth, not more
    assert sum(budget.take("10.0.0.2", 100) for _ in range(30)) == 10


def test_senders_are_metered_apart_and_together():
    budget = ReplyBudget(1000, 2500, 8, clock=Clock())
    assert budget.take("10.0.0.2", 1000)
    assert not budget.take("10.0.0.2", 1)
    assert budget.take("10.0.0.3", 1000)
    assert not budget.take("10.0.0.4", 1000)  # the total is spent
    assert budget.take("10.0.0.4", 500)


def test_spending_on_an_estimate_leaves_a_debt_that_the_next_replies_pay():
    clock = Clock()
    budget = ReplyBudget(1000, 10_000, 8, clock=clock)
    assert budget.take("10.0.0.2", 100)
    budget.spend("10.0.0.2", 1400)  # the reply was 1,500 bytes, not 100
    assert not budget.take("10.0.0.2", 1)
    clock.now = 0.5
    assert not budget.take("10.0.0.2", 1)
    clock.now = 1.6
    assert budget.take("10.0.0.2", 100)


def test_the_table_of_senders_is_bounded():
    budget = ReplyBudget(1000, 1e9, 4, clock=Clock())
    for n in range(100):
        budget.take(f"10.0.{n}.1", 10)
    assert len(budget) == 4


def test_loopback_senders_cannot_be_forged_from_the_network_and_are_not_metered():
    budget = ReplyBudget(1000, 1000, 8, clock=Clock())
    for host in ("127.0.0.1", "127.0.0.3", "::1", "::ffff:127.0.0.1"):
        assert all(budget.take(host, 1000) for _ in range(10))
    assert budget.take("192.168.1.20", 1000)
    assert not budget.take("192.168.1.20", 1)
