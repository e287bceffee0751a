"""medtune.summary, audit, embed, probe, index and similar from Python, on a small folder of real chest X-rays:
``DATA`` first, then the run whose network gives the features (else ``backbone=``), then the data keys, checked as
``key=value`` is on the command line."""

from __future__ import annotations

import pytest

import medtune
from medtune.errors import ConfigError
from tests.conftest import shared_path

#: Images per class of the folder.
PER_CLASS = 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Class folders of 30 NIH X-rays each (normal, pneumonia), copied from cxr3."""
    root = tmp_path_factory.mktemp("xrays")
    for name in ("normal", "pneumonia"):
        (root / name).mkdir()
        for image in sorted(shared_path("cxr3", name).glob("*.png"))[:PER_CLASS]:
            (root / name / image.name).write_bytes(image.read_bytes())
    return root


def test_a_summary_walks_one_sample_through_preprocessing(folder):
    found = medtune.summary(folder, image_size=32, progress=False)
    assert (
        found.ok
        and len(found.table) == 2 * PER_CLASS
        and found.image_size == 32
        and found.table.classes == ("normal", "pneumonia")
    )
    assert found.steps[0].name == "decoded" and found.steps[0].shape == (256, 256)
    with pytest.raises(ConfigError, match="unknown key 'lable'"):
        medtune.summary(folder, lable="x")


def test_features_of_a_backbone_and_of_a_run_then_probes_on_them(folder, tiny_run, tmp_path):
    by_name = medtune.embed(folder, progress=False, image_size=32)
    by_run = medtune.embed(folder, tiny_run, progress=False, image_size=32)
    assert by_name.features.shape == (2 * PER_CLASS, 1280) and by_name.source == "tf_efficientnet_lite0"
    assert by_run.features.shape[0] == 2 * PER_CLASS and by_run.source == str(tiny_run)
    [run] = medtune.probe(folder, method="logreg", out=tmp_path / "probes", progress=False, image_size=32)
    assert run.metrics_file.is_file() and run.path.parent == tmp_path / "probes"
    with pytest.raises(ConfigError, match="probe does not read epochs="):
        medtune.probe(folder, epochs=3)


def test_an_index_finds_the_nearest_images(folder, tmp_path):
    pytest.importorskip("faiss", reason="medtune index needs the search extra: pip install 'medtune[search]'")
    built = medtune.index(folder, out=tmp_path / "index", progress=False, image_size=32)
    assert len(built.images) == 2 * PER_CLASS and built.path == tmp_path / "index"
    query = sorted(shared_path("cxr3", "covid").glob("*.png"))[0]
    found = medtune.similar(tmp_path / "index", query, k=3)
    assert found["rank"].tolist() == [1, 2, 3] and found["similarity"].is_monotonic_decreasing


def test_an_audit_counts_duplicates(folder, tmp_path):
    found = medtune.audit(folder, out=tmp_path / "audit", checks=["duplicates"], progress=False, image_size=32)
    assert found.folder == tmp_path / "audit" and (tmp_path / "audit" / "audit.html").is_file()
    assert {"exact_across", "near_across", "label_issues"} <= set(found.counts)
