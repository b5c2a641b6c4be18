"""SlotPool: counting, FIFO waiters, lending to children, cancellation."""

from __future__ import annotations

import anyio
import pytest

from swarmgym.rollout.limiter import SlotPool


def test_unlimited_pool_counts_in_use() -> None:
    pool = SlotPool(None)
    leases = [pool.try_acquire() for _ in range(5)]
    assert pool.in_use == 5 and all(leases)
    for lease in leases:
        pool.release(lease)
    assert pool.in_use == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        SlotPool(0)


@pytest.mark.anyio
async def test_waiter_gets_released_slot_in_fifo_order() -> None:
    pool = SlotPool(1)
    first = pool.try_acquire()
    assert first is not None and pool.try_acquire() is None
    order: list[int] = []

    async def waiter(i: int) -> None:
        lease = await pool.acquire()
        order.append(i)
        pool.release(lease)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
        await anyio.wait_all_tasks_blocked()
        pool.release(first)
    assert order == [0, 1, 2]
    assert pool.in_use == 0 and pool.free == 1


@pytest.mark.anyio
async def test_child_borrows_the_lent_slot_of_its_blocked_parent() -> None:
    pool = SlotPool(1)
    parent = pool.try_acquire()
    assert parent is not None
    assert pool.try_acquire(parent) is None  # not lending yet
    parent.lend()
    child = pool.try_acquire(parent)
    assert child is not None and child.borrowed_from is parent
    assert pool.try_acquire(parent) is None  # one child at a time on the lent slot
    pool.release(child)
    assert parent.lent_free
    parent.unlend()
    assert not parent.lent_free
    assert pool.in_use == 1


@pytest.mark.anyio
async def test_waiting_child_is_served_when_parent_starts_lending() -> None:
    pool = SlotPool(1)
    parent = pool.try_acquire()
    got = []

    async def child() -> None:
        lease = await pool.acquire(parent)
        got.append(lease.borrowed_from is parent)
        pool.release(lease)

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
        await anyio.wait_all_tasks_blocked()
        assert not got
        parent.lend()
    parent.unlend()
    assert got == [True]


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_no_trace() -> None:
    pool = SlotPool(1)
    held = pool.try_acquire()
    with anyio.move_on_after(0.05):
        await pool.acquire()
    pool.release(held)
    assert pool.free == 1 and pool.in_use == 0
    again = pool.try_acquire()
    assert again is not None
