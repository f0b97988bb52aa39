#!/bin/bash
# GPU readiness in one prepared run, under 10 minutes on a CUDA machine (not yet run on a GPU;
# docs/speed.md): every cell and form trains on the GPU, one run is stopped and resumed from its
# state, and the original final configuration's epoch is timed for each cell on the CPU and the
# GPU, printed as a table. The last line says whether every step passed (exit status 0) or not (1).
#
#   bash bench/gpu_check.sh              # on a CUDA machine, from the repository root
#   bash bench/gpu_check.sh --cpu-only   # the dry run on any machine: the same steps, small, on the CPU
#
# PYTHON names the interpreter (default: python3, or .venv/bin/python when there is one).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then python=.venv/bin/python; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # the CPU column: one thread, as the docs' CPU figures
limit="${GPU_CHECK_LIMIT_S:-540}"  # stop short of 10 minutes whatever happens

case "${1:-}" in
  # The dry run steps the Python twin of the C++ loops: no compiler, nothing built on a first run.
  --cpu-only|--dry-run) args=(--device cpu --quick); export SEQCOPY_FAST="${SEQCOPY_FAST:-python}" ;;
  "") command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      args=(--device cuda) ;;
  *) echo "usage: bash bench/gpu_check.sh [--cpu-only]" >&2; exit 2 ;;
esac
exec timeout --signal=INT --kill-after=20 "$limit" "$python" bench/gpu_check.py "${args[@]}"
