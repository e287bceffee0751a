"""The README's and the docs' pictures, made from a real run in Debian's headless Chromium: the top of its report
(``report.png``) and its guard section (``report-guard.png``), and the page `medtune serve` shows after it has
answered for an X-ray of the demo's test split and any other images given (``served-page.png``; with photos
from elsewhere it shows the guard's "looks unlike the training images"). Look at them after making them.

    python tools/screenshots.py                    # trains `medtune demo epochs=3` first (a few minutes on a CPU)
    python tools/screenshots.py --run runs/demo --images tile.tif photo.jpg

Needs the `test` extra's Playwright and Debian's Chromium (``apt-get install chromium``), as the browser tests do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless=new", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]
REPO = Path(__file__).resolve().parents[1]


def medtune(*args: str) -> list[str]:
    return [sys.executable, "-m", "medtune", *args]


def demo_run(out: Path) -> Path:
    """A real run of the demo: three epochs at the default working size."""
    if not (out / "report.html").is_file():
        subprocess.run(medtune("demo", "epochs=3", "--out", str(out)), check=True, cwd=REPO)
    return out


def an_xray(folder: Path) -> Path:
    """A pneumonia film from the demo data's test split, enlarged as a user's upload would be."""
    from medtune.data import demo_data

    with np.load(demo_data()) as data:
        index = int(np.flatnonzero(data["test_labels"][:, 0] == 1)[0])
        image = Image.fromarray(data["test_images"][index]).resize((224, 224), Image.Resampling.BICUBIC)
    path = folder / "pneumonia-test-0.png"
    image.save(path)
    return path


def serve(run: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(medtune("serve", str(run), "--port", str(port)), cwd=REPO)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"medtune serve {run} stopped with exit code {process.returncode}") from None
            time.sleep(1)
    process.kill()
    raise SystemExit(f"medtune serve {run} did not answer on port {port} within 3 minutes")


def shoot(run: Path, out: Path, port: int, images: list[Path]) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    server = serve(run, port)
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto((run / "report.html").resolve().as_uri())
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / "report.png"))
            if page.locator("#guard").count():
                page.locator("#guard").screenshot(path=str(out / "report-guard.png"))
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.goto(f"http://127.0.0.1:{port}/")
            uploads = [an_xray(Path(tmp)), *images]
            page.set_input_files("#files", [str(p) for p in uploads])
            page.wait_for_function(f"document.querySelectorAll('.result .label').length >= {len(uploads)}",
                                   timeout=120_000)  # fmt: skip
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "served-page.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    print(f"wrote report.png, report-guard.png and served-page.png to {out}: look at them before committing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="an existing run (default: train runs/screenshots-demo)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--images", type=Path, nargs="*", default=[], help="more images to upload to the page")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is absent: apt-get install chromium")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    run = args.run or demo_run(REPO / "runs" / "screenshots-demo")
    shoot(run, args.out, args.port, args.images)


if __name__ == "__main__":
    main()
