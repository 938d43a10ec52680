#!/usr/bin/env bash
# The GPU check of skact: run from the repository root on a machine with a CUDA GPU,
#     OUT=/some/dir bash benchmarks/gpu_check.sh
# It records the GPU and versions, runs the tests marked `gpu` (pytest -m gpu), then
# the throughput benchmark on CUDA (benchmarks/bench_throughput.py --device cuda), and
# leaves everything in $OUT (default /tmp/gpu-out): gpu.txt, gpu-tests.txt,
# gpu-bench.txt and throughput-cuda.{json,md}. Copy the last two to benchmarks/results/
# to record a run. Exit status: 0 when both steps passed, else the first failure's.
#
# The GPU machine is expected to have torch (a CUDA build), scikit-learn, numpy, joblib
# and pillow, and no package registry: skact is installed without dependencies, or used
# from the tree through PYTHONPATH. A missing tqdm (skact's progress bar) is replaced by
# a silent stand-in under $OUT, since nothing here shows progress bars.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, sklearn; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'sklearn', sklearn.__version__)" | tee -a "$OUT/gpu.txt"

if ! python3 -c "import tqdm" 2>/dev/null; then
    mkdir -p "$OUT/shim/tqdm"
    cat > "$OUT/shim/tqdm/__init__.py" <<'EOF'
"""Silent stand-in for tqdm on a machine without it (benchmarks/gpu_check.sh)."""


class tqdm:  # noqa: N801
    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix(self, *args, **kwargs):
        pass

    def update(self, *args, **kwargs):
        pass

    def close(self):
        pass

    @staticmethod
    def write(message, *args, **kwargs):
        print(message)
EOF
    echo "from . import tqdm" > "$OUT/shim/tqdm/auto.py"
    export PYTHONPATH="$OUT/shim${PYTHONPATH:+:$PYTHONPATH}"
    echo "tqdm missing: using the silent stand-in in $OUT/shim" | tee -a "$OUT/gpu.txt"
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
    || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

status=0
# 1. the tests that need CUDA (marked @pytest.mark.gpu)
timeout 180 python3 -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tee "$OUT/gpu-tests.txt"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 5 ] && rc=0  # pytest: no test collected
[ "$status" -eq 0 ] && status=$rc

# 2. the throughput benchmark on CUDA (ResNet-18, 32x32, bf16), saved in $OUT
timeout 420 python3 benchmarks/bench_throughput.py --device cuda --out "$OUT" \
    --note "GPU check (benchmarks/gpu_check.sh)" 2>&1 | tee "$OUT/gpu-bench.txt"
rc=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && status=$rc

echo "gpu_check: exit status $status; results in $OUT"
exit "$status"
