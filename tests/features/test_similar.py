"""``medtune index`` / ``medtune similar`` on real X-rays, and the FAISS index kinds on vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medtune.errors import DataError
from medtune.features.similar import create_index, load_index, normalise
from tests.conftest import medtune, medtune_subprocess, shared_path


def test_an_indexed_image_finds_itself_first(tmp_path):
    folder = shared_path("cxr3", "covid")
    index = tmp_path / "index"
    built = medtune("index", folder, "backbone=tf_efficientnet_lite0", "image_size=32", "--out", index)
    assert built.returncode == 0, built.stderr
    assert "indexed 124 image(s)" in built.stdout and "flat (exact)" in built.stdout
    queries = sorted(folder.glob("*.png"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(queries[0].read_bytes()[:300])
    out = tmp_path / "found.json"
    page = tmp_path / "similar.html"
    result = medtune_subprocess("similar", index, *queries, broken, "-k", "4", "--out", out, "--page", page)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    for query in queries:
        mine = [r for r in rows if r["query"] == str(query)]
        assert [r["rank"] for r in mine] == [1, 2, 3, 4] and mine[0]["path"] == str(query)
        assert mine[0]["similarity"] > 0.999 and mine[1]["similarity"] <= mine[0]["similarity"]
    assert next(r["error"] for r in rows if r["query"] == str(broken))
    printed = json.loads(medtune("similar", index, queries[0], "-k", "2", "--json").stdout)
    assert [r["rank"] for r in printed] == [1, 2] and printed[0]["path"] == str(queries[0])
    html = page.read_text()
    assert queries[0].name in html and "unreadable" in html and (tmp_path / "similar" / "query_1.png").is_file()


def test_ivf_beyond_the_exact_limit_still_finds_each_vector_itself():
    vectors = np.random.default_rng(0).standard_normal((5000, 64)).astype(np.float32)
    index, kind = create_index(vectors, exact_limit=1000)
    assert kind.startswith("ivf")
    _, found = index.search(normalise(vectors[:200]), 1)
    assert (found[:, 0] == np.arange(200)).mean() >= 0.95


def test_a_folder_without_an_index_says_how_to_build_one(tmp_path):
    with pytest.raises(DataError, match="holds no index; build one with `medtune index"):
        load_index(tmp_path)
