"""Outbox claims: notifiers on separate connections to one database never hold one row at once."""

from __future__ import annotations

import threading
import time

from core import db
from core.alerts import AlertStores
from rules.lifecycle import AlertLifecycle
from tests.alertutil import (
    condition,
    connect,
    connections_closed,  # noqa: F401 - an autouse fixture
)

T0 = 1_795_309_200_000
LEASE = 60_000


def _stores(database: db.Target) -> AlertStores:
    return AlertStores.over(connect(database), ["hook"])


def _raise(stores: AlertStores, count: int) -> int:
    """Raise ``count`` alerts; returns a time a little after they were queued (rows are due
    from the wall-clock time they were queued at)."""
    lifecycle = AlertLifecycle(stores.state)
    for i in range(count):
        lifecycle.report(condition(f"wh1/temp/p{i}", at_ms=T0 + i))
    return int(time.time() * 1000) + 10_000


def test_two_notifiers_claim_disjoint_rows_and_a_lease_runs_out(database: db.Target) -> None:
    a, b = _stores(database), _stores(database)
    now = _raise(a, 5)
    mine = a.outbox.claim(owner="a#1", now=now + 10, lease_ms=LEASE, limit=3)
    assert [r.id for r in mine] == [1, 2, 3]
    theirs = b.outbox.claim(owner="b#1", now=now + 10, lease_ms=LEASE)
    assert [r.id for r in theirs] == [4, 5]
    assert b.outbox.claim(owner="b#1", now=now + 10 + LEASE, lease_ms=LEASE) == []  # at the end
    assert not b.outbox.mark_sending([1], owner="b#1", until=now + LEASE)  # not b's
    assert b.outbox.release("b#1") == 2  # b's pass ends without sending 4 and 5
    assert a.outbox.mark_sending([1, 2], owner="a#1", until=now + 20 + LEASE)
    a.outbox.mark_sent(1)
    # a stalls: its lease on row 3 (never marked sending) runs out and b takes it
    taken = b.outbox.claim(owner="b#1", now=now + 11 + LEASE, lease_ms=LEASE, limit=1)
    assert [r.id for r in taken] == [3]
    assert not a.outbox.mark_sending([3], owner="a#1", until=now + 2 * LEASE)
    assert not a.outbox.mark_sending([2, 3], owner="a#1", until=now + 2 * LEASE)  # all or none
    # row 2, renewed when a marked it sending, is still a's; past that, it is due again
    assert [r.id for r in b.outbox.claim(owner="b#1", now=now + 20 + LEASE, lease_ms=LEASE)] == [
        4,
        5,
    ]
    again = b.outbox.claim(owner="b#1", now=now + 21 + LEASE, lease_ms=LEASE)
    assert [r.id for r in again] == [2]
    assert again[0].last_error == "interrupted while sending; sent again"


def test_release_frees_the_unsent_and_keeps_the_rest(database: db.Target) -> None:
    stores = _stores(database)
    now = _raise(stores, 3)
    outbox = stores.outbox
    assert len(outbox.claim(owner="a#1", now=now + 10, lease_ms=LEASE)) == 3
    assert outbox.mark_sending([1, 2], owner="a#1", until=now + LEASE)
    outbox.mark_sent(1)
    assert outbox.release("a#1") == 1  # row 3; row 2 is in flight and stays claimed
    assert [r.id for r in outbox.claim(owner="b#1", now=now + 10, lease_ms=LEASE)] == [3]
    assert [r.status for r in outbox.outbox()] == ["sent", "sending", "pending"]


def test_a_restarted_worker_takes_back_what_it_left_and_only_that(database: db.Target) -> None:
    stores = _stores(database)
    now = _raise(stores, 4)
    outbox = stores.outbox
    outbox.claim(owner="w#1", now=now + 10, lease_ms=LEASE, limit=2)
    outbox.claim(owner="w2#7", now=now + 10, lease_ms=LEASE, limit=1)
    outbox.claim(owner="w-x#3", now=now + 10, lease_ms=LEASE, limit=1)
    assert outbox.mark_sending([1], owner="w#1", until=now + LEASE)
    assert outbox.mark_sending([3], owner="w2#7", until=now + LEASE)
    recovered = outbox.recover_sending("w")
    assert [r.id for r in recovered] == [1]
    assert [(r.id, r.status) for r in outbox.outbox()] == [
        (1, "pending"),
        (2, "pending"),
        (3, "sending"),
        (4, "pending"),
    ]
    # w's claims are gone (rows 1 and 2 are free at once), w2's and w-x's hold
    claimed = outbox.claim(owner="w#2", now=now + 11, lease_ms=LEASE)
    assert [r.id for r in claimed] == [1, 2]


def test_threads_claiming_at_once_share_out_every_row_exactly_once(database: db.Target) -> None:
    now = _raise(_stores(database), 300)
    got: dict[str, list[int]] = {"a#1": [], "b#1": [], "c#1": []}
    start, first_claims = threading.Barrier(len(got)), threading.Barrier(len(got))

    def worker(owner: str) -> None:
        outbox = _stores(database).outbox
        start.wait()
        rows = outbox.claim(owner=owner, now=now + 1000, lease_ms=LEASE, limit=7)
        # Everyone has claimed once before anyone goes on: a thread holding the GIL could
        # otherwise take every row before the others start.
        first_claims.wait()
        while rows:
            ids = [r.id for r in rows]
            assert outbox.mark_sending(ids, owner=owner, until=now + LEASE)
            for row_id in ids:
                outbox.mark_sent(row_id)
            got[owner] += ids
            rows = outbox.claim(owner=owner, now=now + 1000, lease_ms=LEASE, limit=7)

    threads = [threading.Thread(target=worker, args=(owner,)) for owner in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = sorted(i for ids in got.values() for i in ids)
    assert everything == list(range(1, 301))
    assert all(got.values())  # they did share the work
