"""``RolloutManager(..., backend="ray")``: the same run, with top-level episodes on Ray actors.

The driver keeps everything that must be one place: admission and the cluster-wide episode limit, groups
and the group judge, the error-rate breaker, the store, the manifest and resume, ``stream``'s outbox. Only
the episode itself moves: each top-level episode is one call on an :class:`EpisodeWorker` actor, an async
actor with its own event loop, its own in-process ``RolloutManager`` state (sandbox limits per worker;
model-call limits cluster-wide through one limiter actor, :mod:`~swarmgym.rollout.ray_limiter`) and the
policies and env rebuilt from their descriptions (:mod:`~swarmgym.rollout.specs`). The call returns the
trajectory together with the children it spawned (by default they run on the same worker, where a parent
waiting in ``spawn`` lends its slot: no deadlock), so the driver stores a whole episode tree at once, as soon
as it finishes.

A worker process that dies mid-run fails its calls with ``RayActorError``; the driver reruns each of those
episodes, preferring another worker (Ray restarts the dead one). Nothing of a lost call reached the store,
so no episode is lost and none is stored twice. Pause, resume (new policies, versions) and the judge step
go to every worker as a numbered state: broadcast at once, and carried by each call until the worker has
acknowledged it, so a restarted worker catches up on its first call.

A cancelled run (Ctrl-C, a consumer that stops, the breaker) asks each worker to stop its episodes and
stores the partial trajectories they send back as ``cancelled``, as in-process; resume reruns only those.

With ``spawn="spread"`` a child episode goes to the other workers in turn (named actors, so a restarted one
is found again). Its episode slot stays the one its parent's worker acquired for it (with the usual lending),
so no hop ever waits for an episode slot and recursion across workers cannot deadlock; under a sandbox limit
a peer takes a child only with a sandbox slot free at once, else it runs on its parent's worker. The child's
trajectories travel back through its parent's worker.

Not done here: episodes in flight are bounded cluster-wide for top-level episodes (the driver's admission);
children count against their worker's own pool (at most ``max_episodes`` per worker). Model-call latency
histograms stay on the workers (only counters travel back).
"""

from __future__ import annotations

import contextvars
import os
import pickle
from collections import Counter
from typing import Any

import anyio

from ..errors import ConfigError, RolloutError
from ..wire import Task, Trajectory
from .limiter import Lease, SlotPool
from .manager import _Run
from .ray_limiter import GLOBAL, CallLimiter, RemoteSemaphore, new_owner
from .specs import build_router, ensure_registered, env_spec, router_spec

__all__ = ["EpisodeWorker", "RayBackend"]

_MAX_ATTEMPTS = 4  # a top-level episode is tried on at most this many worker processes
_STOP_WAIT_S = 10.0  # a cancelled run waits this long for each worker episode's partial trajectories
# counters record_episode makes from trajectories: the driver recounts those itself from what it receives
_RECOUNTED = ("status_", "child_status_", "episodes_finished", "children_finished", "reward_sum", "tool_calls",
              "judge_", "child_judge_")  # fmt: skip

_ELSEWHERE = Lease(SlotPool(None), None)  # the "parent" of slots held on another worker (see EpisodeWorker.child)

_SINK: contextvars.ContextVar[list[Trajectory] | None] = contextvars.ContextVar("swarmgym_ray_sink", default=None)


def require_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("backend='ray' needs Ray: pip install 'swarmgym[ray]'") from e
    return ray


class _Sink:
    """A worker's store: what an episode stores (its children, its side calls) goes back with the episode.

    Children of concurrently running episodes interleave on one worker; a context variable set around each
    top-level call (inherited by the tasks its tools start) routes each child to its own episode's list.
    """

    needs_flush = False
    resumed = False

    def append(self, traj: Trajectory) -> None:
        box = _SINK.get()
        if box is None:  # not inside an episode call: a bug, never a silent drop
            raise RuntimeError(f"trajectory {traj.id} stored outside an episode call on a Ray worker")
        box.append(traj)

    async def aflush(self) -> None:
        return None

    def done_keys(self) -> set[tuple[str, int]]:
        return set()

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        return None


class _RemoteParent:
    """A child's parent that runs on another worker: its id, and (with a sandbox limit) a sandbox slot
    reserved for the child up front, lent to it like a local parent lends its own."""

    __slots__ = ("traj", "sb_lease")

    def __init__(self, parent_id: str | None, sb_lease: Any) -> None:
        self.traj = _Ref(parent_id) if parent_id is not None else None
        self.sb_lease = sb_lease


class _Ref:
    __slots__ = ("id",)

    def __init__(self, id: str) -> None:
        self.id = id


class _WorkerRun(_Run):
    """A worker's run: with ``spawn="spread"`` a child episode is offered to the next peer worker first."""

    worker: EpisodeWorker

    async def episode(self, env: Any, task: Task, *, role: str, depth: int, parent: Any, **kw: Any) -> Trajectory:
        w = self.worker
        if parent is None or not w.peers or isinstance(parent, _RemoteParent):
            return await super().episode(env, task, role=role, depth=depth, parent=parent, **kw)
        try:
            described = env_spec(env)
        except ConfigError:  # an env made by hand: it can only run here
            return await super().episode(env, task, role=role, depth=depth, parent=parent, **kw)
        sent = {k: v for k, v in kw.items() if k != "lease"}  # the slot held here stays here until it returns
        got = await w.offer_child(described, env.limits, task, role, depth, parent.traj, sent)
        if got is None:  # no peer could take it (gone, or no sandbox slot free): run it here
            return await super().episode(env, task, role=role, depth=depth, parent=parent, **kw)
        return got


class EpisodeWorker:
    """One Ray actor (an async actor: its own event loop) running top-level episodes of one run config."""

    def __init__(self, config: dict[str, Any], index: int = 0, limiter: Any = None) -> None:
        env_id, _, registration = config["env"]
        ensure_registered(env_id, registration)
        self.config = config
        self.run: Any = None
        self.epoch = -1
        self.sent: Counter[str] = Counter()
        self.limiter = limiter
        self.owner = new_owner()
        self.calls: dict[Any, anyio.CancelScope] = {}  # running calls, by their caller's call number
        self.stopped: set[Any] = set()
        self.router_spec: Any = config["router"]
        self.routers: list[Any] = []  # routers replaced by a new policy (closed in aclose)
        self.index = index
        self.peers: list[str] = [n for i, n in enumerate(config.get("peers", ())) if i != index]
        self.handles: dict[str, Any] = {}
        self.next_peer = index
        self.n_calls = 0
        if limiter is not None:  # frees what a dead incarnation of this worker held
            limiter.register.remote(index, self.owner)

    def _setup(self) -> None:
        from ..envs.registry import make
        from .manager import RolloutManager

        c = self.config
        env_id, kwargs, _ = c["env"]
        mgr = RolloutManager(
            build_router(c["router"]), c["limits"], store=_Sink(), sampling=c["sampling"],
            freeze_gc=False, tune_gc=False,
        )  # fmt: skip
        self.run = _WorkerRun(mgr, make(env_id, **kwargs), c["sampling"], 0, 1)
        self.run.worker = self
        if self.limiter is not None:
            use_limiter(self.run, self.limiter, self.owner)

    def _apply(self, state: dict[str, Any] | None) -> None:
        if state is None or state["epoch"] <= self.epoch:
            return
        self.epoch = state["epoch"]
        mgr = self.run.mgr
        if state["router"] is not None and state["router"] != self.router_spec:
            # a new router only when the policies changed (every run's state carries one): each policy build
            # opens its own HTTP session; the old ones are closed at shutdown (calls in flight may still use them)
            self.routers.append(mgr._router)
            mgr._router = build_router(state["router"])
            mgr._router_changed = True
            self.router_spec = state["router"]
        mgr.version = state["version"]
        mgr.judge_step = state["judge_step"]
        if state["paused"]:
            mgr.pause()
        elif mgr._paused:
            mgr.resume()

    async def episode(
        self,
        task: Task,
        group_id: str | None,
        sample_index: int,
        seed: int,
        state: dict[str, Any] | None,
        call: int = -1,
    ) -> tuple[Trajectory | None, list[Trajectory], dict[str, float]]:
        """Run one top-level episode; returns it (None when :meth:`cancel` stopped it), what it stored
        (children, side calls; a stopped episode's partial trajectory last) and counter deltas."""
        if self.run is None:
            self._setup()
        self._apply(state)
        run = self.run
        box: list[Trajectory] = []
        token = _SINK.set(box)
        traj = None
        with anyio.CancelScope() as scope:
            self.calls[call] = scope
            if call in self.stopped:  # stopped before it started
                scope.cancel()
            lease = await run.episodes.acquire(None)
            try:
                traj = await run.episode(
                    run.env, task, role="main", depth=0, parent=None, lease=lease, group_id=group_id,
                    sample_index=sample_index, seed=seed,
                )  # fmt: skip
            finally:
                run.episodes.release(lease)
                _SINK.reset(token)
                self.calls.pop(call, None)
                self.stopped.discard(call)
        return traj, box, self._counter_delta()

    async def cancel(self, call: int) -> None:
        """Stop a running episode call: it stores its partial trajectories (``cancelled``) and returns them."""
        scope = self.calls.get(call)
        if scope is None:
            self.stopped.add(call)
        else:
            scope.cancel()

    async def child(
        self,
        env: tuple[Any, ...],
        limits: Any,
        task: Task,
        role: str,
        depth: int,
        parent_id: str | None,
        kw: dict[str, Any],
        call: Any,
    ) -> tuple[Trajectory | None, list[Trajectory], dict[str, float]] | None:
        """Run a child episode whose parent runs on another worker (None: no sandbox slot free right now).

        A child never waits for a slot here, which keeps spawns across workers free of deadlock: its episode
        slot is held for it on its parent's worker (acquired there with the usual lending), and under a
        sandbox limit it starts only if a sandbox slot is free at once (else it runs on its parent's worker).
        """
        if self.run is None:
            self._setup()
        run = self.run
        sb = None
        if run.limits.max_sandboxes is not None:  # reserve the child's first sandbox (no waiting for it here)
            sb = run.sandboxes.try_acquire(None)
            if sb is None:
                return None
            sb.lend()
        # the child's episode slot is the one its parent's worker acquired for it (and holds until it returns):
        # here it is a borrowed lease, so this pool is not charged twice, and its own children can borrow it
        lease = Lease(run.episodes, _ELSEWHERE)
        env_id, kwargs, registration = env
        ensure_registered(env_id, registration)
        from ..envs.registry import make

        child_env = run.prepare(make(env_id, **kwargs))
        child_env = child_env.fork()
        child_env.limits = limits
        box: list[Trajectory] = []
        token = _SINK.set(box)
        traj = None
        run.metrics.in_flight_up()
        with anyio.CancelScope() as scope:
            self.calls[call] = scope
            if call in self.stopped:
                scope.cancel()
            try:
                traj = await run.episode(
                    child_env, task, role=role, depth=depth, parent=_RemoteParent(parent_id, sb), lease=lease, **kw
                )
            finally:
                run.metrics.gauges["in_flight"] -= 1
                run.episodes.release(lease)
                if sb is not None:
                    sb.unlend()
                    run.sandboxes.release(sb)
                _SINK.reset(token)
                self.calls.pop(call, None)
                self.stopped.discard(call)
        return traj, box, self._counter_delta()

    async def offer_child(
        self, env: Any, limits: Any, task: Task, role: str, depth: int, parent_traj: Any, kw: dict[str, Any]
    ) -> Trajectory | None:
        """Offer a child episode to the next peers in turn; its trajectory, or None if none took it."""
        from ray.exceptions import RayActorError

        ray = require_ray()
        box = _SINK.get()
        for _ in range(len(self.peers)):
            self.next_peer = (self.next_peer + 1) % len(self.peers)
            name = self.peers[self.next_peer]
            peer = self.handles.get(name)
            try:
                if peer is None:
                    peer = self.handles[name] = ray.get_actor(name)
                self.n_calls += 1
                call = (self.owner, self.n_calls)
                ref = peer.child.remote(
                    env, limits, task, role, depth, parent_traj.id if parent_traj is not None else None, kw, call
                )
                try:
                    got = await ref
                except anyio.get_cancelled_exc_class():  # the parent stopped: so does the child, stored partial
                    peer.cancel.remote(call)
                    with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_WAIT_S):
                        try:
                            _, stored, delta = await ref
                            self._take(box, stored, delta)
                        except Exception:
                            pass
                    raise
            except (RayActorError, ValueError):  # the peer died or is not there: try the next one
                self.handles.pop(name, None)
                continue
            if got is None:
                continue
            traj, stored, delta = got  # (the parent listed the child's id when the spawn began)
            self._take(box, stored, delta)
            self.run.metrics.counters["children_remote"] += 1
            return traj  # type: ignore[no-any-return]
        return None

    def _take(self, box: Any, stored: list[Trajectory], delta: dict[str, float]) -> None:
        if box is not None:
            box.extend(stored)  # the child and its descendants, stored before its parent as in-process
        self.run.metrics.counters.update(delta)

    def _counter_delta(self) -> dict[str, float]:
        now = self.run.metrics.counters
        out = {}
        for k, v in now.items():
            if v != self.sent[k] and not k.startswith(_RECOUNTED):
                out[k] = v - self.sent[k]
                self.sent[k] = v
        return out

    async def set_state(self, state: dict[str, Any]) -> None:
        if self.run is None:
            self._setup()
        self._apply(state)

    async def info(self) -> dict[str, Any]:
        import time

        import swarmgym

        node = require_ray().get_runtime_context().get_node_id()
        return {"pid": os.getpid(), "node": node, "swarmgym": swarmgym.__file__, "cpu_s": time.process_time()}

    async def aclose(self) -> None:
        """Close what the policies opened (HTTP sessions) before the actor is killed."""
        if self.run is None:
            return
        seen: set[int] = set()
        for router in [*self.routers, self.run.mgr._router]:
            for p in router._policies.values():
                obj = getattr(p, "_obj", p)
                close = getattr(obj, "aclose", None)
                if close is not None and id(obj) not in seen:
                    seen.add(id(obj))
                    await close()
        self.routers.clear()


class RayBackend:
    """A manager's Ray workers: started on the first run, reused while the run config stays the same.

    Args:
        address: None or ``"local"`` starts a local Ray instance; ``"auto"`` or ``"ray://host:port"`` (or any
            ``ray.init`` address) connects to a running cluster. Ignored when Ray is already initialised.
        workers: number of worker actors (default: one per CPU of the cluster).
        spawn: where child episodes run: ``"local"`` on their parent's worker (no round trip), or
            ``"spread"``: on the other workers in turn (a round trip each; under a sandbox limit only where a
            sandbox slot is free at once, else on the parent's worker).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, spawn: str = "local") -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"ray_workers must be at least 1, got {workers}")
        if spawn not in ("local", "spread"):
            raise ConfigError(f"ray_spawn must be 'local' or 'spread', got {spawn!r}")
        self.spawn = spawn
        require_ray()
        self.address = address
        self.n_workers = workers
        self.actors: list[Any] = []
        self.load: list[int] = []
        self.known: list[int] = []  # the state epoch each worker acknowledged
        self.calls = 0  # episode calls made (numbers them, so one can be cancelled)
        self.config_key: bytes | None = None
        self.limiter: Any = None  # the CallLimiter actor, when the run limits model calls
        self.state: dict[str, Any] = {"epoch": 0, "router": None, "version": 0, "judge_step": 0, "paused": False}

    # ------------------------------------------------------------------ workers

    def start(self, mgr: Any, env: Any) -> None:
        """Make sure workers for this run's config are running (a changed config replaces them)."""
        ray = require_ray()
        described = env_spec(env), router_spec(mgr._router)  # what cannot be sent fails before Ray starts
        if not ray.is_initialized():
            local = self.address in (None, "local")
            kw: dict[str, Any] = {"include_dashboard": False} if local else {}
            # "local" always starts a new instance (None would join a cluster `ray start` left running here)
            ray.init(address="local" if local else self.address, logging_level="WARNING", **kw)
        n = self.n_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        config = {
            "env": described[0],
            "router": described[1],
            "limits": mgr.limits,
            "sampling": mgr.sampling,
        }
        key = pickle.dumps((config, n, self.spawn))
        if key == self.config_key and self.actors:
            return
        self.shutdown()
        names = [f"swarmgym-{os.urandom(6).hex()}-w{i}" for i in range(n)]
        if self.spawn == "spread":  # workers find each other by name (a restarted worker keeps its name)
            config = {**config, "peers": names}
        cpus = float(ray.cluster_resources().get("CPU", 1))
        cls = ray.remote(EpisodeWorker)
        opts = dict(
            num_cpus=min(1.0, cpus / n),
            max_restarts=-1,  # a killed worker comes back (its lost calls are rerun by the driver)
            max_task_retries=0,  # reruns are the driver's: Ray retrying too could run an episode twice
            max_concurrency=mgr.limits.max_episodes + 16,
            scheduling_strategy="SPREAD",
        )
        slots = _call_limits(mgr.limits)
        if slots:
            self.limiter = ray.remote(CallLimiter).options(num_cpus=0, max_restarts=0).remote(slots)
        self.actors = [cls.options(name=names[i], **opts).remote(config, i, self.limiter) for i in range(n)]
        self.load = [0] * n
        self.known = [-1] * n
        self.config_key = key

    def shutdown(self) -> None:
        if self.actors:
            ray = require_ray()
            # best effort: a worker that is dead or stuck must not stop the shutdown
            ray.wait([a.aclose.remote() for a in self.actors], num_returns=len(self.actors), timeout=10)
            for a in self.actors:
                ray.kill(a, no_restart=True)
        if self.limiter is not None:
            require_ray().kill(self.limiter, no_restart=True)
        self.actors, self.load, self.known, self.config_key, self.limiter = [], [], [], None, None

    async def infos(self) -> list[dict[str, Any]]:
        """Each worker's process id and where it imports swarmgym from (tests, diagnostics)."""
        return [await a.info.remote() for a in self.actors]

    # ------------------------------------------------------------------ state

    def sync(self, mgr: Any) -> None:
        """A new numbered state (pause flag, policies, version, judge step) for every worker."""
        self.state = {
            "epoch": self.state["epoch"] + 1,
            "router": router_spec(mgr._router),
            "version": mgr.version,
            "judge_step": mgr.judge_step,
            "paused": mgr._paused,
        }
        for a in self.actors:
            a.set_state.remote(self.state)  # at once for episodes in flight; calls carry it until acknowledged

    # ------------------------------------------------------------------ episodes

    def _pick(self, avoid: set[int]) -> int:
        best = -1
        for i, load in enumerate(self.load):
            if i not in avoid and (best < 0 or load < self.load[best]):
                best = i
        if best < 0:  # every worker failed this episode once: any will do (a restarted one)
            avoid.clear()
            return self._pick(avoid)
        return best

    async def submit(
        self, task: Task, group_id: str | None, sample_index: int, seed: int | None, metrics: Any, salvage: Any
    ) -> tuple[Trajectory, list[Trajectory], dict[str, float]]:
        """Run one top-level episode on a worker; rerun it elsewhere when its worker dies.

        Cancelled (the run stops), it asks the worker to stop the episode and hands what comes back (the
        partial trajectories) to ``salvage`` before re-raising, so they are stored as in-process.
        """
        ray = require_ray()
        from ray.exceptions import RayActorError, RayTaskError

        tried: set[int] = set()
        last: BaseException | None = None
        for _ in range(_MAX_ATTEMPTS):
            i = self._pick(tried)
            state = self.state if self.known[i] < self.state["epoch"] else None
            self.load[i] += 1
            self.calls += 1
            call = self.calls
            actor = self.actors[i]
            ref = actor.episode.remote(task, group_id, sample_index, seed, state, call)
            try:
                out = await ref
            except RayActorError as e:  # the worker process died (or is unreachable): rerun elsewhere
                tried.add(i)
                self.known[i] = -1
                last = e
                metrics.counters["episodes_rerun"] += 1
                continue
            except RayTaskError as e:  # an error of the episode's own (a bug, not a failed episode)
                raise e.as_instanceof_cause() from None
            except anyio.get_cancelled_exc_class():
                actor.cancel.remote(call)
                got = None
                with anyio.CancelScope(shield=True), anyio.move_on_after(_STOP_WAIT_S):
                    try:
                        got = await ref
                    except Exception:  # the worker died too: nothing stored, resume reruns it
                        pass
                if got is None:
                    ray.cancel(ref)
                else:
                    salvage(*got)
                raise
            finally:
                self.load[i] -= 1
            if out[0] is None:  # stopped by a cancel of a previous life of this call: never expected
                raise RolloutError(f"task {task.id!r} sample {sample_index}: the worker stopped the episode")
            if state is not None:
                self.known[i] = max(self.known[i], state["epoch"])
            return out  # type: ignore[no-any-return]
        raise RolloutError(
            f"task {task.id!r} sample {sample_index}: its Ray worker died {_MAX_ATTEMPTS} times in a row "
            f"(last: {type(last).__name__}: {str(last).strip().splitlines()[0] if last else ''}); is the cluster "
            "healthy? With a store, --resume reruns what did not finish"
        )


def _call_limits(limits: Any) -> dict[str, int]:
    """The run's cluster-wide model-call limits as the limiter's slots (empty: no limiter)."""
    slots = dict(limits.max_model_calls_per_role)
    if limits.max_model_calls:
        slots[GLOBAL] = limits.max_model_calls
    return slots


def use_limiter(run: _Run, limiter: Any, owner: str) -> None:
    """Make a run's model-call limits the cluster's: its semaphores become the limiter actor's slots."""
    if run.model_sem is not None:
        run.model_sem = RemoteSemaphore(limiter, GLOBAL, owner)  # type: ignore[assignment]
    run.role_sems = {r: RemoteSemaphore(limiter, r, owner) for r in run.role_sems}  # type: ignore[misc]
    run.policies.clear()  # wrapped policies hold the semaphores they were made with


class _RayRun(_Run):
    """A run whose top-level episodes go to the manager's Ray workers (children and group judges of the
    driver's own, e.g. a group judge's spawns, stay in-process)."""

    def __init__(self, mgr: Any, env: Any, sampling: Any, seed: int, group_size: int) -> None:
        super().__init__(mgr, env, sampling, seed, group_size)
        self.backend: RayBackend = mgr._ray
        self.backend.start(mgr, env)  # the env as given: a made env keeps its id and arguments
        mgr._ray.sync(mgr)
        if self.backend.limiter is not None:  # the driver's own calls (a group judge's) count too
            owner = new_owner()
            self.backend.limiter.register.remote(-1, owner)
            use_limiter(self, self.backend.limiter, owner)

    async def episode(self, env: Any, task: Task, *, role: str, depth: int, parent: Any, **kw: Any) -> Trajectory:
        if parent is not None or depth:
            return await super().episode(env, task, role=role, depth=depth, parent=parent, **kw)
        traj, stored, delta = await self.backend.submit(
            task, kw.get("group_id"), kw.get("sample_index", 0), kw.get("seed"), self.metrics, self._salvage
        )
        self._store(stored, delta)
        if self.store is not None and self.store.needs_flush:
            await self.store.aflush()
        return traj

    def _store(self, stored: list[Trajectory], delta: dict[str, float]) -> None:
        """What a worker episode stored (children and side calls, before their parent, as in-process)."""
        store = self.store
        for t in stored:
            self.metrics.record_episode(t, t.parent_id is None)
            if store is not None:
                store.append(t)
        self.metrics.counters.update(delta)

    def _salvage(self, traj: Trajectory | None, stored: list[Trajectory], delta: dict[str, float]) -> None:
        """A cancelled run: store what the stopped worker episode stored, its partial trajectory included
        (``cancelled``, so ``--resume`` reruns it). An episode that finished just as the run was cancelled is
        stored only if it needs no group (in-process, an unfinished group's members are not stored either)."""
        self._store(stored, delta)
        if traj is not None and self.group_size == 1:
            self.metrics.record_episode(traj, True)
            if self.store is not None:
                self.store.append(traj)
