#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (CUDA 12): install what is missing, build, run the
# test suite with the default device on the GPU (DYNET_BACKEND=gpu), and time rnnlm_batch and
# mlp_minibatch, then the autobatched tagger64, bilstm2_auto and treelstm_nonterminals (its dropout
# groups), on the GPU against this package on the CPU (ratio = GPU / CPU throughput).
# Budget: under 10 minutes on an H200. Targets: tests green; mlp_minibatch's large config >= 10x.
#
#   bash bench/gpu_check.sh            (from anywhere; PYTHON=... to choose the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
status=0

echo "== GPU"
nvidia-smi -L || { echo "no NVIDIA GPU visible (nvidia-smi failed)"; exit 2; }

echo "== install"
$PY -c "import numpy, scipy, Cython, pytest" 2>/dev/null || \
    $PY -m pip install -q "numpy>=1.23" "scipy>=1.9" "Cython>=3.0" "pytest>=7"
$PY -c "import cupy" 2>/dev/null || $PY -m pip install -q "cupy-cuda12x" || true
$PY -c "import cupy; print('CuPy', cupy.__version__, 'sees', cupy.cuda.runtime.getDeviceCount(), 'GPU(s)')" || {
    echo "CuPy cannot be imported or sees no GPU: pip install cupy-cuda12x"; exit 2; }

echo "== build"
timeout 240 $PY setup.py build_ext --inplace -j "$(nproc)" > /tmp/dynet_gpu_build.log 2>&1 || {
    tail -30 /tmp/dynet_gpu_build.log; echo "build failed"; exit 2; }

echo "== tests on the GPU (DYNET_BACKEND=gpu: parameters, inputs and the graph on GPU:0)"
DYNET_BACKEND=gpu timeout 270 $PY -m pytest -q -x -p no:cacheprovider tests \
    --ignore=tests/oracle --deselect tests/test_generic_backend.py || status=1

echo "== kernels"
timeout 60 $PY -m pytest -q -p no:cacheprovider tests/test_gpu_kernels.py || status=1

echo "== speed: GPU:0 / CPU (this package), the CPU with all its cores for BLAS"
DYNET_BLAS_THREADS=$(nproc) timeout 150 $PY -m bench.run --impls gpu,ours --seconds 2 --repeat 1 \
    mlp_minibatch rnnlm_batch || status=1

echo "== autobatching: GPU:0 / CPU, without and with --dynet-autobatch 1 (groups as one CuPy call each)"
DYNET_BLAS_THREADS=$(nproc) timeout 150 $PY -m bench.run --impls gpu,ours --seconds 2 --repeat 1 \
    tagger64 bilstm2_auto treelstm_nonterminals || status=1
exit $status
