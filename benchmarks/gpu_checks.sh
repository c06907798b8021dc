#!/usr/bin/env bash
# The GPU checks of the open issues, as one script for a lent GPU machine (see
# CONTRIBUTING notes in docs/engine.md): CUDA tests, then the benchmarks' GPU numbers.
# Expects lit_rl's missing dependencies as wheels in .whl/ (torch comes with the machine)
# and writes its log to $OUT/gpu_checks.log. Each step has its own time limit so that one
# slow step cannot cost the others.
#
#     bash benchmarks/gpu_checks.sh                       # every step
#     bash benchmarks/gpu_checks.sh cuda-tests offline    # only these
#
# The wheels (the machine has Python 3.12, torch, lightning, numpy, yaml; 30 MB in all),
# made here once per checkout (`.whl/` is git-excluded):
#     echo /.whl/ >> .git/info/exclude
#     for p in torchrl==0.14.1 tensordict==0.14.3 gymnasium==1.4.0 farama-notifications \
#              mujoco==4.0.0 mujoco-core==4.0.0 mujoco-studio==4.0.0 glfw pyopengl websockets \
#              omegaconf==2.4.0 antlr4-python3-runtime==4.13.2 pyvers hoptorch \
#              importlib_metadata orjson; do
#         python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
#             --implementation cp --platform manylinux_2_28_x86_64 \
#             --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$p"
#     done
set -u
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
LOG="$OUT/gpu_checks.log"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
    # setup.py installs callbacks/ as lit_rl.callbacks; without an install, link it
    [ -e lit_rl/callbacks ] || ln -s ../callbacks lit_rl/callbacks
fi
export PYTHONUNBUFFERED=1 RL_WARNINGS=False
# No libEGL on the box: MuJoCo's import would fail under MUJOCO_GL=egl, so turn rendering off
python3 -c "import ctypes.util, sys; sys.exit(ctypes.util.find_library('EGL') is None)" ||
    export MUJOCO_GL=disable
STEPS=" $* "
step() {  # step SECONDS NAME COMMAND...
    local limit=$1 name=$2
    shift 2
    [ "$STEPS" = "  " ] || [[ "$STEPS" == *" $name "* ]] || return 0
    echo "=== $name ($(date +%T))" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "=== $name: exit ${PIPESTATUS[0]}" | tee -a "$LOG"
}
env_fps() {  # env_fps LABEL RUN_DIR: a run's time/env_fps by env step, into the log
    [ -f "$2/metrics.csv" ] || return 0
    python3 - "$1" "$2/metrics.csv" <<'PY' 2>&1 | tee -a "$LOG"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[2])) if r.get("time/env_fps")]
print(f"{sys.argv[1]}, time/env_fps by env step:",
      [(r.get("env_steps") or r.get("step"), round(float(r["time/env_fps"]), 1)) for r in rows])
PY
}
step 60 versions python3 -c "import torch, torchrl, tensordict, lightning, gymnasium, mujoco
print(torch.__version__, torch.cuda.get_device_name(0), torchrl.__version__,
      tensordict.__version__, lightning.__version__, gymnasium.__version__, mujoco.__version__)"
step 200 cuda-tests python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
step 150 cuda-new python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py \
    -k "graphed_step_trains_like_eager or compiled_sac_trains_on_gpu"
step 60 consistency python3 benchmarks/consistency.py --device cuda
step 40 planning python3 benchmarks/planning.py --device cuda --run-steps 0
step 150 offline python3 benchmarks/offline.py --device cuda --updates 2000 --rounds 2
step 90 sac-halfcheetah python3 -c "from lit_rl.cli import main; raise SystemExit(main())" \
    run recipes/sac_halfcheetah.yaml trainer.accelerator=gpu max_env_steps=7000 \
    algo.warmup_steps=1000 eval.every_env_steps=100000 eval.episodes=1 \
    checkpoint.every_env_steps=100000 progress_bar=false "logger=[csv]" \
    run_dir=/tmp/sac_halfcheetah
env_fps "SAC HalfCheetah-v5 on GPU" /tmp/sac_halfcheetah
step 150 sac-halfcheetah-compiled python3 -c "from lit_rl.cli import main; raise SystemExit(main())" \
    run recipes/sac_halfcheetah.yaml trainer.accelerator=gpu algo.compile=true max_env_steps=7000 \
    algo.warmup_steps=1000 eval.every_env_steps=100000 eval.episodes=1 \
    checkpoint.every_env_steps=100000 progress_bar=false "logger=[csv]" \
    run_dir=/tmp/sac_halfcheetah_compiled
env_fps "SAC HalfCheetah-v5 on GPU, compiled" /tmp/sac_halfcheetah_compiled
step 80 dpmd-humanoid python3 -c "from lit_rl.cli import main; raise SystemExit(main())" \
    run recipes/dpmd_humanoid.yaml trainer.accelerator=gpu max_env_steps=6000 \
    algo.warmup_steps=1000 eval.every_env_steps=100000 eval.episodes=1 \
    checkpoint.every_env_steps=100000 progress_bar=false "logger=[csv]" \
    run_dir=/tmp/dpmd_humanoid
env_fps "DPMD Humanoid-v5 on GPU" /tmp/dpmd_humanoid
# issue 17's scaling target needs a core per rank: this box has them (CPU ranks, gloo)
step 240 scaling python3 benchmarks/scaling.py --ranks 1 2 4
step 230 scaling-fixed python3 benchmarks/scaling.py --ranks 1 2 4 --threads-per-rank 2
# each piece of a GPU SAC env step alone, and the variants that could replace it
step 130 gpu-step python3 benchmarks/gpu_step.py --device cuda
profile_sac() {  # profile_sac SECONDS NAME EXTRA_OVERRIDE...: cProfile of a short run
    local limit=$1 name=$2
    shift 2
    step "$limit" "$name" python3 -m cProfile -o "/tmp/$name.prof" -m lit_rl.cli \
        run recipes/sac_halfcheetah.yaml trainer.accelerator=gpu "$@" \
        algo.warmup_steps=1000 eval.every_env_steps=100000 eval.episodes=1 \
        checkpoint.every_env_steps=100000 progress_bar=false "logger=[csv]" \
        "run_dir=/tmp/$name"
    [ -f "/tmp/$name.prof" ] || return 0
    python3 - "/tmp/$name.prof" <<'PY' 2>&1 | tee -a "$LOG"
import pstats, sys
stats = pstats.Stats(sys.argv[1])
stats.sort_stats("tottime").print_stats(30)
stats.sort_stats("cumulative").print_stats(60)
PY
}
# where an eager SAC env step goes on this machine, and what is left once the update is
# one CUDA graph (algo.compile)
profile_sac 90 sac-profile max_env_steps=3000
profile_sac 150 sac-profile-compiled algo.compile=true max_env_steps=4000
