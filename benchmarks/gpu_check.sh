#!/usr/bin/env bash
# The GPU path, proven in under 5 minutes on one GPU (no network: the model is randomly initialised):
#   bash benchmarks/gpu_check.sh
#   DEVICE=cpu CLIPS=400 VALID=500 REPEATS=4 bash benchmarks/gpu_check.sh    # a smoke test of the script on a CPU
# 1. wav2vec 2.0 base-sized embedding extraction (95 M parameters) on 2,000 synthetic clips: clips/s;
# 2. the sweep as users run it, 100 repeats at N = 400 with a 10,000-clip validation set: runs/s;
# 3. benchmarks/roofline.py on the device: clips/s and GFLOP/s of the training step and validation for 1, 10
#    and 100 models, beside the device's matmul rate and memory bandwidth.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
CLIPS=${CLIPS:-2000}      # training clips embedded (at least 400: the sweep draws 400)
CLIPS=$(( CLIPS > 400 ? CLIPS : 400 ))
VALID=${VALID:-10000}     # validation clips of the sweep
REPEATS=${REPEATS:-100}   # runs of the sweep
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

"$PY" - "$WORK" "$CLIPS" "$VALID" > /dev/null <<'EOF'  # steps 0 and 2 print their summaries
import sys
from pathlib import Path

from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

sys.path.insert(0, "benchmarks")
from synthetic_root import synthetic_root

work = Path(sys.argv[1])
Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(work / "wav2vec2-base-random")  # the base size, random weights
Wav2Vec2FeatureExtractor().save_pretrained(work / "wav2vec2-base-random")
synthetic_root(work, {"train": int(sys.argv[2]), "valid": int(sys.argv[3]), "test": 1000})  # steps 0 and 2
EOF
ROOT="$WORK/root"

seconds() {  # wall-clock seconds of a command; its output only if it fails
  local TIMEFORMAT=%R
  { time "$@" > "$WORK/log" 2>&1 || { cat "$WORK/log" >&2; return 1; }; } 2>&1
}
rate() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

s=$(seconds "$PY" extract_embeddings.py --data-root "$ROOT" --model "$WORK/wav2vec2-base-random" --device "$DEVICE")
echo "embedding extraction, wav2vec 2.0 base size, $CLIPS clips on $DEVICE: $s s, $(rate "$CLIPS" "$s") clips/s (model load included)"

s=$(seconds "$PY" run_all_classifications.py --data-root "$ROOT" --device "$DEVICE" --n 400 --methods random --ratios 1.0 \
      --repeats "$REPEATS" --recipe original --max-epochs 40)
echo "the sweep, $REPEATS runs at N = 400 with $VALID validation clips on $DEVICE: $s s, $(rate "$REPEATS" "$s") runs/s"

"$PY" benchmarks/roofline.py --device "$DEVICE" --skip-sweep
