"""Run the real ``qua2`` command line in child processes, fast enough for dozens of cases.

Starting Python and importing torch costs seconds per process on a 2-core machine, which would
put ~60 CLI cases far over the suite's budget. :class:`CliLauncher` starts one server process
that imports qua2 (and torch, diffusers …) once but never runs a tensor operation, then forks
one child per command: the child is a separate process that runs ``qua2.cli.main(argv)`` with
its own stdout/stderr files and exits with its exit code, exactly as ``python -m qua2 ARGS``
would (an uncaught exception prints its traceback and exits 1, as the interpreter does).
The server never initialises OpenMP, so children start with fresh thread pools.
A few tests also run ``python -m qua2`` itself, to pin the entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SERVER = r"""
import json, os, sys, traceback
import qua2.cli, qua2.pipeline, qua2.quant, qua2.metrics, qua2.models.digits  # noqa
import qua2.surrogates.fit, qua2.search.stage, qua2.study.workers  # noqa
import diffusers, sklearn.linear_model, xgboost  # noqa
# diffusers imports its model families lazily, which costs seconds per child otherwise.
diffusers.DiTTransformer2DModel, diffusers.UNet2DModel, diffusers.DDIMScheduler  # noqa
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(request["cwd"])
        for fd, name in ((1, "out"), (2, "err")):
            target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
        code = 1
        try:
            code = qua2.cli.main(request["argv"])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def error_lines(self) -> list[str]:
        """The lines from the first ``qua2: error:`` on (the message a user reads)."""
        lines = self.err.strip().splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith("qua2: error:")]
        return lines[starts[0]:] if starts else []


class CliLauncher:
    """``launcher(*argv)`` → :class:`CliResult` of ``qua2 ARGV`` in a fresh child process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.count = 0
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        self.server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=env)
        assert self.server.stdout.readline().strip() == "ready"

    def __call__(self, *argv: str | Path) -> CliResult:
        self.count += 1
        out, err = (self.workdir / f"{self.count}.{n}" for n in ("out", "err"))
        request = {"argv": [str(a) for a in argv], "out": str(out), "err": str(err),
                   "cwd": str(self.workdir)}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        code = json.loads(self.server.stdout.readline())
        return CliResult(code, out.read_text(), err.read_text())

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)


def run_module(*argv: str | Path, cwd: Path | None = None) -> CliResult:
    """``python -m qua2 ARGV`` as a user runs it (slow: a full interpreter start)."""
    done = subprocess.run([sys.executable, "-m", "qua2", *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd)
    return CliResult(done.returncode, done.stdout, done.stderr)
