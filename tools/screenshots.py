"""Screenshots of the served page and the report's guard section, taken in Debian's headless Chromium.

    python tools/screenshots.py RUN IMAGE... [--out docs/images]

Serves RUN (a run directory or an exported ``.onnx``) with ``medtune serve`` on a free loopback port, uploads the
images on the page and waits for every answer (``serve-guard.png``); then opens ``RUN/report.html`` and shoots
its guard section (``report-guard.png``). Look at them before you use them.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-dev-shm-usage"]  # fmt: skip


def serve(model: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "medtune", "serve", str(model), "--port", str(port)], cwd=REPO,
                               env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    url, process = serve(args.run)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.set_input_files("#files", [str(p) for p in args.images])
            page.wait_for_function(f"document.querySelectorAll('.result').length >= {len(args.images)}",
                                   timeout=120_000)  # fmt: skip
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "serve-guard.png"), full_page=True)
            report = (args.run if args.run.is_dir() else args.run.parent.parent) / "report.html"
            if report.is_file():
                page.goto(report.resolve().as_uri())
                page.locator("#guard").screenshot(path=str(args.out / "report-guard.png"))
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
