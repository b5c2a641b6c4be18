"""SandboxPool: warm, bounded, verified resets, replacement, close."""

from __future__ import annotations

import anyio
import pytest

from swarmgym.errors import ConfigError, SandboxError
from swarmgym.toolsets.sandbox import SandboxPool

pytestmark = pytest.mark.anyio


async def test_prewarm_and_warm_acquire(backend):
    async with SandboxPool(backend, size=2) as pool:
        assert pool.idle == 2 and pool.stats.created == 2
        async with pool.acquire() as sb:
            assert pool.in_use == 1
            assert (await sb.run_python("1 + 1")).value == "2"
        assert pool.idle == 2 and pool.stats.created == 2  # reused, not recreated
    assert pool.total == 0


async def test_release_resets_and_verifies(backend):
    async with SandboxPool(backend, size=1, files={"README.md": "template\n"}) as pool:
        async with pool.acquire() as sb:
            assert (await sb.exec("cat README.md")).stdout == "template\n"
            await sb.exec("echo dirty > README.md; echo x > new.txt; nohup sleep 600 >/dev/null 2>&1 &")
            await sb.run_python("secret = 1")
        async with pool.acquire() as sb2:
            assert sb2 is sb
            assert (await sb2.exec("ls -A; cat README.md; pgrep -c sleep || true")).stdout.split() == [
                "README.md",
                "template",
                "0",
            ]
            assert "NameError" in (await sb2.run_python("secret")).error
        assert pool.stats.discarded == 0 and pool.stats.resets == 2


async def test_bounded_acquire_times_out_with_a_clear_error():
    async with SandboxPool("local", size=1, acquire_timeout_s=0.3) as pool:
        async with pool.acquire():
            with pytest.raises(SandboxError, match=r"no sandbox became free within 0.3 s \(pool size 1"):
                async with pool.acquire():
                    pass


async def test_waiters_are_served_when_a_sandbox_is_released():
    async with SandboxPool("local", size=2) as pool:
        seen: list[str] = []

        async def worker(i: int) -> None:
            async with pool.acquire() as sb:
                r = await sb.exec(f"echo {i}; sleep 0.05")
                seen.append(r.stdout.strip())

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(worker, i)
        assert sorted(seen, key=int) == [str(i) for i in range(10)]
        assert pool.stats.created == 2


async def test_unverifiable_reset_discards_and_replaces():
    async with SandboxPool("local", size=1) as pool:
        async with pool.acquire() as sb:
            first = sb.id
            sb.pristine_hash = "not-the-real-hash"  # verification must fail
        assert pool.stats.discarded == 1 and pool.stats.replaced == 1
        async with pool.acquire() as sb:
            assert sb.id != first and sb.alive


async def test_lazy_start_and_close():
    pool = SandboxPool("local", size=1)
    async with pool.acquire() as sb:  # never entered: starts on first acquire
        assert sb.alive
    await pool.close()
    assert not sb.alive
    with pytest.raises(SandboxError, match="closed"):
        async with pool.acquire():
            pass


def test_pool_usable_from_two_event_loops():
    """A pool (and its sandboxes) is not bound to the loop that started it (Gym portal vs caller loop)."""
    pool = SandboxPool("local", size=1)

    async def use() -> str:
        async with pool.acquire() as sb:
            return (await sb.exec("echo hi")).stdout

    assert anyio.run(use) == "hi\n"
    assert anyio.run(use) == "hi\n"
    anyio.run(pool.close)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown sandbox backend 'podman'"):
        SandboxPool("podman")
    with pytest.raises(ConfigError, match="unknown sandbox option"):
        SandboxPool("local", netwrk=True)
    with pytest.raises(ConfigError, match="size must be >= 1"):
        SandboxPool("local", size=0)


def test_dropped_pool_kills_its_sandboxes():
    import gc

    from swarmgym.toolsets.sandbox import reaper

    before = reaper.live_count()
    pool = SandboxPool("local", size=2)
    anyio.run(pool.start)
    assert reaper.live_count() == before + 2
    del pool
    gc.collect()
    assert reaper.live_count() == before
