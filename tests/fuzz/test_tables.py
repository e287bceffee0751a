"""Fuzzing what describes the data: CSV/TSV manifests, MedMNIST-style ``.npz`` archives, YAML configurations and
``key=value`` strings. Every input ends in a table (or config) or one of medtune's named errors, within the time
and memory bounds of `tests.fuzz.conftest`; for archives every row is then decoded, as the image store would.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medtune.config import load_config
from medtune.config.merge import parse_overrides
from medtune.data.decode import decode_entries, table_entries
from medtune.data.readers import read_table
from medtune.data.table import Table
from medtune.errors import ImageReadError, MedtuneError
from tests.conftest import SHARED_DATA
from tests.fuzz.conftest import mutated, read_or_refuse

#: pydicom warns about every odd value of a mutated header; those warnings are the point, not news
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COLUMNS = ["path", "image", "filename", "label", "class", "finding_labels", "patient_id", "split", "study", "x"]
CELLS = st.one_of(
    st.sampled_from(["", "normal", "pneumonia", "covid", "train", "val", "test", "NaN", "a.png", "../x.png",
                     "normal/00001280_004.png", "1", "0", "-1", "1e309", "Pneumonia|Effusion", " ", '"', "\t"]),
    st.text(max_size=12),
)  # fmt: skip
XRAYS = SHARED_DATA / "cxr3"


def _csv_text(rows: list[list[str]], columns: list[str], sep: str) -> str:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in (sep, '"', "\n", "\r")) else value

    return "\n".join(sep.join(cell(v) for v in row) for row in [columns, *rows]) + "\n"


@given(data=st.data())
def test_manifests_read_into_a_table_or_are_refused_by_name(data, tmp_path):
    columns = data.draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5, unique=True), label="columns")
    rows = data.draw(st.lists(st.lists(CELLS, min_size=len(columns), max_size=len(columns)), max_size=8), label="rows")
    sep = data.draw(st.sampled_from([",", "\t"]), label="separator")
    text = _csv_text(rows, columns, sep)
    if data.draw(st.booleans(), label="mutate"):
        raw = data.draw(mutated(text.encode("utf-8")), label="bytes")
    else:
        raw = text.encode("utf-8")
    path = tmp_path / ("labels.tsv" if sep == "\t" else "labels.csv")
    path.write_bytes(raw)
    for image in ("a.png", "normal/00001280_004.png"):  # some paths resolve to real images beside the manifest
        target = tmp_path / image
        target.parent.mkdir(parents=True, exist_ok=True)
        if (XRAYS / "normal" / "00001280_004.png").is_file() and not target.exists():
            target.write_bytes((XRAYS / "normal" / "00001280_004.png").read_bytes())
    keys = data.draw(st.sampled_from([{}, {"label": "label"}, {"labels": "finding_labels", "label_sep": "|"}]))
    result = read_or_refuse(lambda: read_table(path, load_config(**keys)), path)
    assert isinstance(result, Table | MedtuneError)


def _npz_seed() -> bytes:
    """A small MedMNIST-style archive of real PneumoniaMNIST images (12 per split)."""
    real = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz"
    out = io.BytesIO()
    if real.is_file():
        with np.load(real) as arrays:
            np.savez_compressed(out, **{name: arrays[name][:12] for name in arrays.files})
    else:
        rng = np.random.default_rng(0)
        np.savez_compressed(out, train_images=rng.integers(0, 255, (12, 28, 28), dtype=np.uint8),
                            train_labels=rng.integers(0, 2, (12, 1)))  # fmt: skip
    return out.getvalue()


NPZ_SEED = _npz_seed()
ARRAYS = st.one_of(
    st.builds(
        lambda shape, dtype: np.zeros(shape, dtype=dtype),
        st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
        st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_, "U3", np.complex64]),
    ),
    hnp.arrays(np.int64, st.sampled_from([(4,), (4, 1), (4, 3), (4, 8, 8)]),
               elements=st.sampled_from([0, 1, 2, -1, 2**40])),
    hnp.arrays(np.float64, st.sampled_from([(4,), (4, 1), (4, 8, 8)]),
               elements=st.sampled_from([0.0, 1.0, 0.5, float("nan"), float("inf"), 1e300])),
)  # fmt: skip


def _read_archive(path: Path) -> object:
    table = read_table(path)
    decoded = [image for _, image in decode_entries(table_entries(table))]
    for image in decoded:
        assert isinstance(image, np.ndarray | ImageReadError), type(image)
    return table


@given(data=st.data())
def test_npz_archives_read_and_decode_or_are_refused_by_name(data, tmp_path):
    path = tmp_path / "fuzzed.npz"
    if data.draw(st.booleans(), label="structured"):
        names = data.draw(st.lists(st.sampled_from(["train_images", "train_labels", "val_images", "val_labels",
                                                    "test_images", "test_labels", "images", "labels", "other"]),
                                   min_size=1, max_size=6, unique=True), label="arrays")  # fmt: skip
        arrays = {name: data.draw(ARRAYS, label=name) for name in names}
        if data.draw(st.booleans(), label="real images"):  # only the labels are odd
            arrays = {"train_images": np.zeros((4, 8, 8), np.uint8), "train_labels": arrays[names[0]]}
        np.savez(path, **arrays)
    else:
        path.write_bytes(data.draw(mutated(NPZ_SEED), label="bytes"))
    result = read_or_refuse(lambda: _read_archive(path), path)
    assert isinstance(result, Table | MedtuneError)


CONFIG_SEED = b"""# a run of the pathology recipe
data: ../shared/data/lc25000-lung
label_from: name
strategy: freeze
head: pool-bn-dropout
augment: flip
rotate: 20
epochs: 6
image_size: 128
classes: [lung_aca, lung_n, lung_scc]
"""


@given(data=st.data())
def test_yaml_configurations_validate_or_are_refused_by_name(data, tmp_path):
    path = tmp_path / "experiment.yaml"
    choice = data.draw(st.sampled_from(["mutated", "text", "tags"]), label="kind")
    if choice == "mutated":
        path.write_bytes(data.draw(mutated(CONFIG_SEED), label="yaml"))
    elif choice == "text":
        path.write_text(data.draw(st.text(max_size=200), label="yaml"), encoding="utf-8", errors="surrogatepass")
    else:  # Python tags would build objects, or run code, with an unsafe loader
        tag = data.draw(st.sampled_from(["!!python/object/apply:os.system ['true']", "!!python/name:os.system",
                                         "!!python/object:medtune.config.Config {}", "!!binary aGVsbG8="]))  # fmt: skip
        path.write_text(f"epochs: 2\nname: {tag}\n", encoding="utf-8")
    result = read_or_refuse(lambda: load_config(path), path)
    assert isinstance(result, MedtuneError) or result.epochs is None or result.epochs >= 1


@given(overrides=st.lists(st.one_of(
    st.text(max_size=30),
    st.builds("{}={}".format, st.sampled_from(["epochs", "lr", "image_size", "classes", "freeze", "window", "frame",
                                              "label_pattern", "backbone", "channels", "monitor", "data", "seed"]),
              st.text(max_size=20)),
), max_size=4))  # fmt: skip
def test_key_value_strings_validate_or_are_refused_by_name(overrides):
    result = read_or_refuse(lambda: load_config(overrides=parse_overrides(overrides)), overrides)
    assert not isinstance(result, Exception) or isinstance(result, MedtuneError)
