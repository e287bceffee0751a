"""``medtune serve`` as a real process on a free loopback port, with a real exported model: the API, every bad
upload, a bounded load test and the page in Debian's headless Chromium."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import REPO, shared_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(model: Path, concurrency: int = 8, *extra: str):
    """`medtune serve MODEL` on a free port of 127.0.0.1 with a 2 MB upload cap: (url, process)."""
    port = _free_port()
    command = [sys.executable, "-m", "medtune", "serve", str(model), "--port", str(port), "--max-upload-mb", "2",
               "--concurrency", str(concurrency), *extra]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url, process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"the server did not start: {process.stdout.read()}")


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """The tiny run, exported, served as MODEL.onnx."""
    from medtune.deploy.export import export

    url, process = _start(export(tiny_run, tmp_path_factory.mktemp("serve") / "model.onnx").model)
    yield url
    process.terminate()
    process.wait(timeout=30)


def _png(path: Path) -> tuple[str, bytes, str]:
    return path.name, path.read_bytes(), "image/png"


def test_health_model_and_openapi(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    model = httpx.get(f"{server}/model").json()
    assert model["classes"] == ["normal", "pneumonia"] and model["image_size"] == 32 and model["kind"] == "onnx"
    assert httpx.get(f"{server}/openapi.json").json()["paths"].keys() >= {"/predict", "/model", "/health"}


def test_predict_answers_as_the_command_line_does(server, tiny_run):
    from medtune.apply.predict import predict, prediction_records

    images = [*sorted(shared_path("cxr3", "covid").glob("*.png"))[:3], shared_path("dicom", "nih_dx_no_finding.dcm")]
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in images]
    answer = httpx.post(f"{server}/predict", files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    expected = prediction_records(predict(tiny_run, images, progress=False))
    assert [r["label"] for r in answer.json()] == [r["label"] for r in expected]
    assert [r["file"] for r in answer.json()] == [p.name for p in images]


def test_bad_uploads_get_their_status_and_reason_and_the_server_keeps_serving(server, tmp_path):
    text = httpx.post(f"{server}/predict", files=[("files", ("notes.txt", b"hello", "text/plain"))])
    assert text.status_code == 415 and "notes.txt: not an image medtune reads" in text.json()["detail"]
    fake = httpx.post(f"{server}/predict", files=[("files", ("scan.png", b"not a png", "image/png"))])
    assert fake.status_code == 422 and fake.json()["detail"].startswith("scan.png:")
    truncated = shared_path("cxr-fullres", "00000061_012.png").read_bytes()[:5000]
    cut = httpx.post(f"{server}/predict", files=[("files", ("cut.png", truncated, "image/png"))])
    assert cut.status_code == 422 and "cut.png" in cut.json()["detail"]
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, format="PNG")  # 400 M pixels in a small file
    assert len(bomb.getvalue()) < 2_000_000
    boom = httpx.post(f"{server}/predict", files=[("files", ("bomb.png", bomb.getvalue(), "image/png"))])
    assert boom.status_code == 422 and "bomb.png" in boom.json()["detail"]
    large = httpx.post(f"{server}/predict", files=[("files", ("big.png", os.urandom(3_000_000), "image/png"))])
    assert large.status_code == 413 and "larger than 2 MB" in large.json()["detail"]
    nothing = httpx.post(f"{server}/predict")
    assert nothing.status_code == 422
    assert httpx.get(f"{server}/health").status_code == 200  # still serving after every bad request
    assert not list(Path("/tmp").glob("medtune-serve-*"))  # nothing left behind


def _load(url: str, requests: int, clients: int) -> tuple[list[int], list[float]]:
    image = sorted(shared_path("cxr3", "normal").glob("*.png"))[0]
    payload = [("files", _png(image))]
    latencies: list[float] = []

    def one(_: int) -> int:
        started = time.perf_counter()
        status = httpx.post(f"{url}/predict", files=payload, timeout=60).status_code
        latencies.append(time.perf_counter() - started)
        return status

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(requests))), latencies


def test_bounded_load_has_no_errors(server):
    statuses, latencies = _load(server, 500, 8)
    assert statuses == [200] * 500, sorted(set(statuses))
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]
    print(f"500 requests, 8 at a time: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, no errors")


def test_a_full_server_answers_503_at_once_instead_of_queueing(server):
    model = Path(httpx.get(f"{server}/model").json()["model"])  # the same exported model, one prediction at a time
    url, process = _start(model, concurrency=1)
    try:
        statuses, _ = _load(url, 48, 8)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 6 and statuses.count(503) >= 1, statuses
    assert httpx.get(f"{server}/health").status_code == 200


def test_the_page_predicts_an_image_picked_in_chromium(server, tmp_path):
    from tests.reports.test_browser import launched_chromium

    image = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[0]
    with launched_chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(server)
        page.set_input_files("#files", str(image))
        page.wait_for_selector(".result .label", timeout=60_000)
        label = page.inner_text(".result .label")
        page.screenshot(path=str(tmp_path / "page.png"))
        if os.environ.get("MEDTUNE_SCREENSHOTS"):  # keep the picture to look at
            page.screenshot(path=os.environ["MEDTUNE_SCREENSHOTS"])
    assert label in ("normal", "pneumonia")
    assert all(url.startswith(server) or url.startswith("blob:") for url in requests)  # nothing from outside


def test_grad_cam_on_request_from_a_served_run(server, tiny_run):
    url, process = _start(tiny_run)
    try:
        image = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[0]
        files = [("files", _png(image))]
        answer = httpx.post(f"{url}/predict", params={"cam": "true"}, files=files, timeout=120)
        assert answer.status_code == 200, answer.text
        (record,) = answer.json()
        assert record["cam"].startswith("data:image/png;base64,")
        overlay = Image.open(io.BytesIO(base64.b64decode(record["cam"].split(",", 1)[1])))
        assert overlay.size == (192, 192) and overlay.mode == "RGB"  # 32 px enlarged for the page
        plain = httpx.post(f"{url}/predict", files=files, timeout=60).json()
        assert "cam" not in plain[0] and plain[0]["label"] == record["label"]
    finally:
        process.terminate()
        process.wait(timeout=30)
    refused = httpx.post(f"{server}/predict", params={"cam": "true"}, files=files, timeout=60)
    assert refused.status_code == 400 and "serve the run directory" in refused.json()["detail"]


def test_a_streamed_body_without_a_length_is_stopped_at_the_cap(server):
    def chunks():
        yield b"--x\r\nContent-Disposition: form-data; name=files; filename=a.png\r\n\r\n"
        for _ in range(40):  # 40 x 100 kB: past the 2 MB cap, with no Content-Length announcing it
            yield os.urandom(100_000)

    answer = httpx.post(f"{server}/predict", content=chunks(),
                        headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)  # fmt: skip
    assert answer.status_code == 413 and "larger than 2 MB" in answer.json()["detail"]
    assert httpx.get(f"{server}/health").status_code == 200


def test_only_loopback_counts_as_private():
    from medtune.deploy.server import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "10.0.0.1", "example.org"))


def test_similar_cases_come_from_the_index_beside_the_answer(server, tiny_run, tmp_path):
    pytest.importorskip("faiss", reason="similar cases need faiss-cpu (the search extra)")
    import shutil

    from medtune.features.similar import build_index

    folder = tmp_path / "cases" / "normal"
    folder.mkdir(parents=True)
    for path in sorted(shared_path("cxr3", "normal").glob("*.png"))[:20]:
        shutil.copy(path, folder / path.name)
    index = build_index(tiny_run, folder.parent, out=tmp_path / "index", progress=False)
    url, process = _start(tiny_run, 8, "--index", str(index.path))
    try:
        assert httpx.get(f"{url}/model").json()["similar"] == 20
        query = sorted(folder.iterdir())[4]
        answer = httpx.post(f"{url}/predict", params={"similar": 3}, files=[("files", _png(query))], timeout=120)
        assert answer.status_code == 200, answer.text
        (record,) = answer.json()
        assert [c["rank"] for c in record["similar"]] == [1, 2, 3]
        first = record["similar"][0]
        assert first["id"] == f"normal/{query.name}" and first["similarity"] > 0.999  # the image itself
        assert first["label"] == "normal" and first["thumbnail"].startswith("data:image/png;base64,")
    finally:
        process.terminate()
        process.wait(timeout=30)
    refused = httpx.post(f"{server}/predict", params={"similar": 3}, files=[("files", _png(query))], timeout=60)
    assert refused.status_code == 400 and "medtune index DATA RUN" in refused.json()["detail"]
