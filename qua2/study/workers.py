"""Evaluate a study's pending configurations, in this process, in worker processes or on Ray.

:func:`evaluate_pending` is the one entry point; the study's ``executor`` section chooses how.
``local`` workers are plain subprocesses (``python -m qua2.study.workers DIR``) that
coordinate only through the SQLite store: each claims one pending row at a time in a
transaction, so no configuration is evaluated twice, and a row whose worker died is put back
to pending by the next run. ``ray`` hands the rows to Ray actors
(:mod:`qua2.study.ray_executor`). Each worker sets an explicit torch thread count: two
processes with default OpenMP settings on two cores slow each other ~100× (measured while
building qua2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from qua2.errors import Qua2Error
from qua2.log import say, show_messages
from qua2.progress import progress_bar
from qua2.specs import QuantConfig
from qua2.study.store import Store
from qua2.study.study import Study

if TYPE_CHECKING:
    from qua2.study.config import ExecutorSection
    from qua2.study.ray_executor import KeptActors


def evaluate_loop(study: Study, kinds: Sequence[str] | None = None,
                  progress: tqdm | None = None) -> int:
    """Claim and evaluate pending rows until none is left; return how many this process did."""
    from qua2.study.evaluate import Evaluator
    from qua2.study.option_cache import open_option_cache
    from qua2.study.racing import previous_ingredients, target_images

    evaluator: Evaluator | None = None
    done = 0
    with Store(study.path("study.sqlite")) as store:
        while (row := store.claim(kinds)) is not None:
            try:
                evaluator = evaluator or Evaluator(study, open_option_cache(study))
                result = evaluator.evaluate(QuantConfig.from_dict(row.config),
                                            count=target_images(study, row),
                                            previous=previous_ingredients(study, row))
            except BaseException:  # Ctrl-C or bad input: the row is not this config's fault
                store.release(row.id)
                raise
            result.store_in(store, row.id)
            done += 1
            if progress is not None:
                progress.update(1)
    return done


def evaluate_pending(study: Study, kinds: Sequence[str] | None = None,
                     executor: ExecutorSection | None = None, desc: str = "evaluating",
                     kept: KeptActors | None = None) -> int:
    """Evaluate every pending row (of ``kinds``) as ``executor`` (default: the study's) says;
    ``kept``: Ray actors to reuse (see :func:`qua2.study.ray_executor.evaluate_with_ray`)."""
    import torch

    executor = executor or study.config.executor
    with Store(study.path("study.sqlite")) as store:
        recovered = store.recover_abandoned()
        if recovered:
            say(f"{recovered} configuration(s) left unfinished by a stopped run will be "
                "evaluated again.")
        pending = sum(store.count("pending", kind) for kind in kinds) if kinds else \
            store.count("pending")
    if pending == 0:
        return 0
    with progress_bar(total=pending, desc=desc, unit="config") as progress:
        if executor.kind == "ray":
            from qua2.study.ray_executor import evaluate_with_ray

            return evaluate_with_ray(study, kinds, executor, progress, kept=kept)
        if executor.workers <= 1:
            before = torch.get_num_threads()
            torch.set_num_threads(executor.threads)
            try:
                return evaluate_loop(study, kinds, progress)
            finally:  # later stages of this process keep the thread count they had
                torch.set_num_threads(before)
        return _run_workers(study, kinds, executor.workers, executor.threads, pending, progress)


def _run_workers(study: Study, kinds: Sequence[str] | None, workers: int, threads: int,
                 pending: int, progress: tqdm) -> int:
    command = [sys.executable, "-m", "qua2.study.workers", str(study.directory),
               "--threads", str(threads)]
    if kinds:
        command += ["--kinds", *kinds]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads)}
    processes = [subprocess.Popen(command, env=env) for _ in range(workers)]
    with Store(study.path("study.sqlite")) as store:
        start = _finished(store)
        try:
            while any(p.poll() is None for p in processes):
                time.sleep(0.5)
                done = min(pending, _finished(store) - start)
                if done != progress.n:  # redraw on progress only: keeps log files short
                    progress.update(done - progress.n)
        except KeyboardInterrupt:
            for process in processes:
                process.terminate()
            raise
    failed = [p.returncode for p in processes if p.returncode]
    if Qua2Error.exit_code in failed:  # a worker stopped on bad input and said why
        raise Qua2Error("an evaluation worker stopped on the error above; fix it and re-run.")
    if failed:
        say(f"{len(failed)} worker(s) exited with an error; see their output above.")
    return progress.n


def _finished(store: Store) -> int:
    counts = store.counts()
    return counts["done"] + counts["failed"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A qua2 evaluation worker (internal).")
    parser.add_argument("study")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kinds", nargs="*")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    show_messages()
    try:
        evaluate_loop(Study.open(args.study), args.kinds)
    except Qua2Error as error:
        print(f"qua2: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
