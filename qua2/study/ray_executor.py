"""Evaluation on a Ray cluster: actors that hold the model, fed by a driver that owns the store.

Why Ray (Moritz et al., OSDI 2018): actors pinned to GPUs, actor failure detection and the
same code on a laptop, one multi-GPU node, Slurm and KubeRay; qua2 adds only the study logic.

How it works:

- Each actor (:class:`EvaluationWorker`) opens the study directory, loads the denoiser and the
  option cache **once**, and then evaluates configuration after configuration with the same
  :class:`~qua2.study.evaluate.Evaluator` as a local worker: same seeds, noise and metrics, so
  the executor changes no number (tests/study/test_ray_executor.py checks it bit for bit).
- This process (the driver) alone opens ``study.sqlite``: it claims a row for each idle actor,
  and writes each result as it comes back. The store never needs a shared filesystem.
- The actors read the rest of the study directory (saved config, FP reference, option cache
  shards) **by path**, so the directory must be on a filesystem every node mounts (NFS/Lustre
  home on Slurm, a shared volume on Kubernetes; trivially true on one machine). Chosen over the
  Ray object store because shards are read lazily layer by layer and the OS page cache shares
  one copy between the actors of a node: a PixArt-α-sized cache (≈ 1.6 GB for six options) is
  read about once per node (≈ 2 s at 1 GB/s), while the object store would keep a second copy
  in shared memory per node and the driver would have to read and send all of it first.
  An actor that cannot see the directory stops the run with one sentence saying so.
- Faults: an actor that dies (process killed, node lost, CUDA error that kills the process)
  loses only its configuration, which goes back to the queue and is evaluated by another actor;
  a configuration on which actors died twice is recorded as failed with that reason, so a
  configuration that crashes its worker is not retried forever. A configuration that fails by
  itself (NaN images) is a failed row at once, as locally. A killed driver leaves rows
  ``running`` with its pid; the next ``qua2 run`` puts them back (``Store.recover_abandoned``).
  Ctrl-C puts the rows in flight back to pending and kills the actors.
- Verification (:func:`verification_scores`): each candidate's per-image scores are computed by
  one actor over all held-out seeds (the same computation as locally); when fewer candidates
  than actors are left, a candidate's seeds are split at multiples of the sampler's batch size
  and the per-image scores merged in seed order, so the bootstrap resamples the same images.

Ray moves arguments and results between processes with its own serialisation; nothing of it is
written to disk by qua2 (results go to the store as JSON).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qua2.errors import Qua2Error
from qua2.log import say
from qua2.study.store import Store
from qua2.study.study import Study

if TYPE_CHECKING:
    from tqdm import tqdm

    from qua2.metrics.per_image import ImageScores
    from qua2.study.config import ExecutorSection
    from qua2.study.evaluate import Evaluation, Evaluator
    from qua2.study.reference import Reference
    from qua2.study.scoring import Scorer

#: Actors died on the same configuration this many times → it is recorded as failed.
DEATHS_PER_CONFIG = 2
#: Seconds the driver waits for a result before it looks at the actors again.
POLL_SECONDS = 1.0


class EvaluationWorker:
    """The body of one Ray actor: a study's model, option cache and scorer, loaded once."""

    def __init__(self, directory: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.directory = Path(directory)
        self._study: Study | None = None
        self._evaluator: Evaluator | None = None
        self._references: dict[str, Reference] = {}
        self._scorer: Scorer | None = None

    def setup(self) -> dict[str, Any]:
        """Open the study (raises a one-sentence error if this node cannot see it)."""
        if not (self.directory / "study.yaml").is_file():
            raise Qua2Error(
                f"the study directory {self.directory} is not visible on Ray node "
                f"{socket.gethostname()}; put it on a filesystem every node mounts (actors "
                "read the option cache and reference from it).")
        from qua2.log import show_messages

        show_messages()
        self._study = Study.open(self.directory)
        return {"pid": os.getpid(), "node": socket.gethostname()}

    @property
    def study(self) -> Study:
        if self._study is None:
            self.setup()
        assert self._study is not None
        return self._study

    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            from qua2.study.evaluate import Evaluator
            from qua2.study.option_cache import open_option_cache

            self._evaluator = Evaluator(self.study, open_option_cache(self.study))
        return self._evaluator

    def evaluate(self, config: dict[str, Any], count: int | None = None,
                 previous: dict[str, Any] | None = None) -> Evaluation:
        """One stored configuration, exactly as :func:`qua2.study.workers.evaluate_loop` does
        (``count`` images; ``previous``: the per-image arrays of a racing row's first ones)."""
        from qua2.specs import QuantConfig

        return self.evaluator().evaluate(QuantConfig.from_dict(config), count=count,
                                         previous=previous)

    def image_scores(self, config: dict[str, Any] | None, seeds: str, start: int, stop: int
                     ) -> ImageScores:
        """Per-image scores of the ``seeds`` reference's images ``start:stop`` (verification or
        selection seeds; ``None``: the FP model)."""
        from qua2.study.evaluate import candidate_image_scores
        from qua2.study.option_cache import open_option_cache
        from qua2.study.reference import get_reference
        from qua2.study.scoring import build_scorer

        study = self.study
        if seeds not in self._references:
            self._references[seeds] = get_reference(study, seeds)
        self._scorer = self._scorer or build_scorer(study)
        return candidate_image_scores(study, config, open_option_cache(study), self._scorer,
                                      self._references[seeds].slice(start, stop))


# --------------------------------------------------------------------------- connecting
def connect(executor: ExecutorSection) -> None:
    """Join (or start) the Ray instance ``executor.address`` names; one sentence if unreachable."""
    try:
        import ray
    except ImportError:
        raise Qua2Error("executor.kind: ray needs the ray package; install it with "
                        "`pip install -e '.[ray]'` (scripts/main and scripts/test do).") from None
    if ray.is_initialized():
        return
    address = executor.address
    if address not in (None, "auto"):
        _check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Qua2Error(f"cannot connect to the Ray cluster at {address} ({first}); start it "
                        "with `ray start --head` or fix executor.address / --address.") from None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once an address nothing listens on (Ray itself retries for a minute)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise Qua2Error(f"cannot reach the Ray cluster at {address} ({reason}); start it with "
                        "`ray start --head` or fix executor.address / --address.") from None


# --------------------------------------------------------------------------- the actors
@dataclass
class Task:
    """One call for an actor: ``method(*args)``, known to the driver by ``key``."""

    key: str
    method: str
    args: tuple[Any, ...]


@dataclass
class Worker:
    """One live actor, with the process and node it runs in."""

    actor: Any
    pid: int
    node: str


class ActorPool:
    """``executor.workers`` :class:`EvaluationWorker` actors; a dead one is replaced."""

    def __init__(self, study: Study, executor: ExecutorSection) -> None:
        import ray

        gpus = executor.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if study.device.type == "cuda" else 0.0
        # Ray must not restart actors or retry calls on its own: the driver decides what is
        # evaluated again, so that no configuration is evaluated twice.
        self._actor_class = ray.remote(EvaluationWorker).options(
            num_cpus=executor.threads, num_gpus=gpus, max_restarts=0, max_task_retries=0)
        self._arguments = (str(study.directory.resolve()), executor.threads)
        self.size = _fitting_workers(executor.workers, executor.threads, gpus)
        self.deaths = 0
        self.idle: list[Worker] = []
        self._start(self.size)

    def _start(self, count: int) -> None:
        import ray

        actors = [self._actor_class.remote(*self._arguments) for _ in range(count)]
        infos = _get(ray, [actor.setup.remote() for actor in actors])  # type: ignore[union-attr]
        self.idle += [Worker(actor, info["pid"], info["node"]) for actor, info in
                      zip(actors, infos, strict=True)]

    def replace(self, worker: Worker) -> None:
        """Count a dead actor and start a fresh one in its place."""
        self.deaths += 1
        _kill(worker)
        if self.deaths > 2 * self.size + 2:
            raise Qua2Error(f"{self.deaths} Ray workers died; see the Ray logs (e.g. "
                            "/tmp/ray/session_latest/logs) for why, fix it and re-run.")
        self._start(1)

    def shutdown(self) -> None:
        for worker in self.idle:
            _kill(worker)
        self.idle.clear()


def _fitting_workers(workers: int, cpus: int, gpus: float, wait: float = 30.0) -> int:
    """How many of ``workers`` actors the cluster has room for (an actor that does not fit
    would wait for resources forever, and the run with it).

    Actors killed a moment ago (the previous stage's) free their resources asynchronously, so
    up to ``wait`` seconds are given for the free resources to reach what the cluster has.
    """
    import ray

    def room(resources: dict[str, float]) -> int:
        fits = math.floor(resources.get("CPU", 0) / cpus + 1e-9)
        if gpus > 0:
            fits = min(fits, math.floor(resources.get("GPU", 0) / gpus + 1e-9))
        return fits

    wanted = min(workers, room(ray.cluster_resources()))
    deadline = time.monotonic() + wait
    while room(free := ray.available_resources()) < wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    fits = room(free)
    if fits < 1:
        raise Qua2Error(f"the Ray cluster has no room for a worker with {cpus} CPU(s) and "
                        f"{gpus:g} GPU(s) (free: {free.get('CPU', 0):g} CPUs, "
                        f"{free.get('GPU', 0):g} GPUs); lower executor.cpus_per_worker (--threads)"
                        " or executor.gpus_per_worker, or add nodes.")
    if fits < workers:
        say(f"the Ray cluster has room for {fits} of {workers} workers; using {fits}.")
    return min(fits, workers)


def _kill(worker: Worker) -> None:
    import ray

    ray.kill(worker.actor, no_restart=True)


def _get(ray: Any, refs: Any) -> Any:
    """``ray.get`` that turns an actor's Qua2Error back into a Qua2Error here."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, Qua2Error):
            raise Qua2Error(str(error.cause)) from None
        raise


#: Called with (worker, task) right after a task is handed out (tests kill workers here).
DispatchHook = Callable[[Worker, Task], None]


def run_tasks(pool: ActorPool, take: Callable[[], Task | None],
              done: Callable[[Task, Any], None], lost: Callable[[Task], Task | None],
              abandon: Callable[[Task], None], progress: tqdm | None = None,
              on_dispatch: DispatchHook | None = None) -> None:
    """Keep every idle actor busy with the next task until ``take`` has none left.

    ``done`` receives each result; ``lost`` is told of a task whose actor died and returns the
    task to run again (or None); on an error or Ctrl-C, ``abandon`` gets each task in flight.
    """
    import ray

    in_flight: dict[Any, tuple[Worker, Task]] = {}
    retry: list[Task] = []
    try:
        while True:
            while pool.idle and (task := retry.pop() if retry else take()) is not None:
                worker = pool.idle.pop()
                in_flight[getattr(worker.actor, task.method).remote(*task.args)] = (worker, task)
                if on_dispatch is not None:
                    on_dispatch(worker, task)
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                worker, task = in_flight.pop(ref)
                try:
                    value = _get(ray, ref)
                except ray.exceptions.RayActorError:
                    again = lost(task)
                    if again is not None:
                        retry.append(again)
                    pool.replace(worker)
                    continue
                except BaseException:
                    abandon(task)
                    pool.idle.append(worker)
                    raise
                pool.idle.append(worker)
                done(task, value)
            if progress is not None:
                progress.set_postfix(actors=len(pool.idle) + len(in_flight), refresh=False)
    finally:
        for worker, task in in_flight.values():
            abandon(task)
            _kill(worker)


# --------------------------------------------------------------------------- the stages
def evaluate_with_ray(study: Study, kinds: Sequence[str] | None, executor: ExecutorSection,
                      progress: tqdm | None = None,
                      on_dispatch: DispatchHook | None = None,
                      kept: KeptActors | None = None) -> int:
    """Evaluate every pending row (of ``kinds``) on Ray actors; return how many were recorded.

    ``kept``: actors that outlive this call (racing evaluates in waves; each actor then loads
    the model once, not once per wave); without it the actors are started and stopped here.
    """
    connect(executor)
    store = Store(study.path("study.sqlite"))
    deaths: dict[str, int] = {}
    recorded = 0

    def take() -> Task | None:
        from qua2.study.racing import previous_ingredients, target_images

        row = store.claim(kinds)
        if row is None:
            return None
        # The driver reads a racing row's earlier per-image arrays and sends them along, so
        # actors need no access to image_scores/ (and the driver alone writes it).
        return Task(row.id, "evaluate", (row.config, target_images(study, row),
                                         previous_ingredients(study, row)))

    def done(task: Task, result: Evaluation) -> None:
        nonlocal recorded
        result.store_in(store, task.key)
        recorded += 1
        if progress is not None:
            progress.update(1)

    def lost(task: Task) -> Task | None:
        from qua2.study.evaluate import Evaluation

        deaths[task.key] = deaths.get(task.key, 0) + 1
        if deaths[task.key] < DEATHS_PER_CONFIG:
            say(f"a Ray worker died while evaluating {task.key}; it goes back to the queue.")
            store.release(task.key)
        else:  # recorded as a failed row
            done(task, Evaluation(error=f"the Ray worker process died {DEATHS_PER_CONFIG} times "
                                        "while evaluating this configuration (see the Ray logs)"))
        return None

    pool = None
    try:
        pool = kept.pool(study, executor) if kept is not None else ActorPool(study, executor)
        run_tasks(pool, take, done, lost, abandon=lambda task: store.release(task.key),
                  progress=progress, on_dispatch=on_dispatch)
    finally:
        if pool is not None and kept is None:
            pool.shutdown()
        store.close()
    return recorded


class KeptActors:
    """An :class:`ActorPool` started on first use and kept until :meth:`shutdown`."""

    def __init__(self) -> None:
        self._pool: ActorPool | None = None

    def pool(self, study: Study, executor: ExecutorSection) -> ActorPool:
        if self._pool is None:
            self._pool = ActorPool(study, executor)
        return self._pool

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def verification_scores(study: Study, executor: ExecutorSection,
                        candidates: Mapping[str, dict[str, Any] | None], n_images: int,
                        on_candidate: Callable[[str, ImageScores], None],
                        on_dispatch: DispatchHook | None = None, seeds: str = "verification",
                        start: int = 0) -> None:
    """Per-image scores of each candidate on images ``start … n_images`` of ``seeds``, passed
    to ``on_candidate`` as soon as complete."""
    from qua2.metrics.per_image import ImageScores

    connect(executor)
    chunks = [(start + a, start + b) for a, b in _chunks(
        n_images - start, study.config.sampler.batch_size,
        split=len(candidates) < executor.workers, workers=executor.workers)]
    queue = [Task(f"{name}:{i}", "image_scores", (config, seeds, start, stop))
             for name, config in candidates.items() for i, (start, stop) in enumerate(chunks)]
    queue.reverse()  # pop() from the end hands tasks out in candidate order
    parts: dict[str, dict[int, ImageScores]] = {name: {} for name in candidates}

    def done(task: Task, scores: ImageScores) -> None:
        name, _, index = task.key.rpartition(":")
        parts[name][int(index)] = scores
        if len(parts[name]) == len(chunks):
            on_candidate(name, ImageScores.concat([parts[name][i] for i in range(len(chunks))]))

    pool = ActorPool(study, executor)
    try:
        run_tasks(pool, lambda: queue.pop() if queue else None, done, lost=lambda task: task,
                  abandon=lambda task: None, on_dispatch=on_dispatch)
    finally:
        pool.shutdown()


def _chunks(n_images: int, batch_size: int, split: bool, workers: int) -> list[tuple[int, int]]:
    """Seed ranges for one candidate: all at once, or cut at multiples of ``batch_size``.

    Cut on batch boundaries, each chunk generates exactly the batches the whole run would, so
    the images are the same; only the scoring networks see other batch shapes (differences
    within the portability tolerance, docs/reproducibility.md).
    """
    if not split or workers <= 1:
        return [(0, n_images)]
    per_chunk = batch_size * max(1, math.ceil(n_images / (batch_size * workers)))
    return [(start, min(start + per_chunk, n_images)) for start in range(0, n_images, per_chunk)]
