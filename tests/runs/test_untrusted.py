"""Files from elsewhere: a checkpoint or weights file carrying pickled objects that would run code when loaded, and
manifests whose paths climb out of their folder. Each is refused by name, and nothing runs."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
import torch

import medtune
from medtune.config import load_config
from medtune.data.readers import read_table
from medtune.errors import DataError, WeightsError
from medtune.models import create_classifier
from medtune.runs.trained import load_trained
from tests.conftest import shared_path
from tests.interrupt import Killed, StopAtSecondEpoch


class RunsCode:
    """Pickles as a call of os.system: loading it with an unrestricted unpickler would touch `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path, marker, **contents):
    torch.save({**contents, "extra": RunsCode(marker)}, path)
    return path


def test_checkpoint_carrying_pickled_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = _evil(tmp_path / "best.ckpt", marker, state_dict={}, medtune={})
    with pytest.raises(DataError, match=r"carries pickled Python objects .*GLOBAL (posix|os)\.system.*do not use it"):
        load_trained(path)
    assert not marker.exists()


def test_weights_file_carrying_pickled_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = _evil(tmp_path / "weights.pth", marker, **{"fc.weight": torch.zeros(2, 8)})
    with pytest.raises(WeightsError, match=r"cannot read weights file .*weights\.pth"):
        create_classifier("resnet18", 2, weights=str(path))
    assert not marker.exists()


def test_resuming_from_a_planted_last_checkpoint_is_refused_before_lightning_loads_it(tmp_path):
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    config = load_config(data=data, limit=32, image_size=32, epochs=2, batch_size=16, workers=0, report=False)
    with pytest.raises(Killed):
        medtune.train(config, tmp_path / "run", progress=False, callbacks=[StopAtSecondEpoch()])
    marker = tmp_path / "ran"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    contents = torch.load(last, map_location="cpu", weights_only=True)
    _evil(last, marker, **contents)
    with pytest.raises(DataError, match=r"last\.ckpt carries pickled Python objects"):
        medtune.train(config, tmp_path / "run", progress=False)
    assert not marker.exists()


def _manifest(tmp_path, rows):
    folder = tmp_path / "manifests"
    folder.mkdir(exist_ok=True)
    path = folder / "labels.csv"
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(path, index=False)
    return path


def test_manifest_paths_climbing_out_of_its_folder_need_outside_paths(tmp_path):
    xrays = shared_path("cxr3")
    shutil.copytree(xrays / "normal", tmp_path / "normal")
    shutil.copytree(xrays / "covid", tmp_path / "covid")
    rows = [[f"../{p.parent.name}/{p.name}", p.parent.name] for folder in ("normal", "covid")
            for p in sorted((tmp_path / folder).glob("*.png"))[:4]]  # fmt: skip
    path = _manifest(tmp_path, rows)
    with pytest.raises(DataError, match=r"8 relative image path\(s\) climb out of its folder .*outside_paths=true"):
        read_table(path, load_config())
    table = read_table(path, load_config(outside_paths=True))
    assert len(table) == 8 and set(table.classes) == {"covid", "normal"}
    inside = _manifest(tmp_path, [["sub/../x.png", "a"], ["y.png", "b"]])  # '..' that stays inside is fine
    assert len(read_table(inside, load_config()).frame) == 2


def test_prediction_inputs_climbing_out_of_their_folder_need_outside_paths(tmp_path, tiny_run):
    shutil.copytree(shared_path("cxr3") / "normal", tmp_path / "normal")
    path = _manifest(tmp_path, [[f"../normal/{p.name}", ""] for p in sorted((tmp_path / "normal").glob("*"))[:3]])
    with pytest.raises(DataError, match="climb out of its folder"):
        medtune.predict(tiny_run, [path], progress=False)
    assert len(medtune.predict(tiny_run, [path], progress=False, outside_paths=True)) == 3
