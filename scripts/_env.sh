# Sourced by scripts/main and scripts/test: make a local .venv with the pinned, CPU-only
# dependency set (constraints.txt), re-installing only when pyproject.toml or constraints.txt change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "qua2: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.qua2-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "qua2: installing dependencies into .venv (first run takes a few minutes)" >&2
  # torch is installed first and pinned so that nothing later can pull a CUDA build.
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -c constraints.txt "torch==$(grep '^torch==' constraints.txt | cut -d= -f3)"
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,ray]"
  echo "$want" > "$stamp"
fi
# Two busy processes on two cores slow torch ~100x when OpenMP threads spin.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export PATH="$root/.venv/bin:$PATH"
