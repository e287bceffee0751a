"""Your own network from a file, end to end on real PneumoniaMNIST images: train, stop, resume, predict, explain,
a changed or deleted file, and a leaderboard row beside tf_efficientnet_lite0."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

import medtune
from medtune.config import load_config
from medtune.deploy.export import export
from medtune.errors import ConfigError
from medtune.experiments.ensemble import create_ensemble
from medtune.runs.trained import load_trained
from tests.conftest import medtune as medtune_cli
from tests.conftest import shared_path
from tests.experiments.conftest import FAST
from tests.interrupt import Killed, StopAtSecondEpoch
from tests.models.test_custom import SMALL, write

KEYS = {"limit": 64, "image_size": 32, "epochs": 2, "batch_size": 16, "workers": 0, "report": False, "threads": 1}


def _data():
    return str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))


def _xrays(count=6):
    return sorted(shared_path("cxr3", "normal").glob("*.png"))[:count]


def test_network_from_a_file_trains_resumes_predicts_and_explains(tmp_path, capsys):
    nets = tmp_path / "nets"
    nets.mkdir()
    path = write(nets, "small.py", SMALL)
    config = load_config(data=_data(), backbone=f"{path}:SmallNet", **KEYS)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        medtune.train(config, out, progress=False, callbacks=[StopAtSecondEpoch()])
    assert not (out / "metrics.json").exists() and (out / "checkpoints" / "last.ckpt").is_file()
    record = json.loads((out / "network" / "network.json").read_text())
    assert record["kind"] == "file" and record["file"] == str(path) and record["attr"] == "SmallNet"
    assert (out / "network" / "small.py").read_text() == path.read_text()

    result = medtune.train(config, out, progress=False)
    assert result.resumed and pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2]
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["medtune"]["network"]["sha256"] == record["sha256"]
    assert set(result.metrics["per_class"]) == {"normal", "pneumonia"}

    images = _xrays()
    before = medtune.predict(out, images)
    assert len(before) == len(images) and set(before["label"]) <= {"normal", "pneumonia"}
    explained = medtune.explain(out, images[:2], tmp_path / "cams")
    assert set(explained["layer"]) == {"features.3"}  # the last convolution of the user's network
    exported = export(out, tmp_path / "small.onnx")  # checked against the PyTorch network on the test split
    assert exported.parity["agreement"] == 1.0 and exported.parity["exporter"] == "torchscript"
    dynamo = export(out, tmp_path / "dynamo.onnx", exporter="dynamo")  # torch.export's exporter, the same answers
    assert dynamo.parity["exporter"] == "dynamo" and dynamo.parity["max_abs_diff"] <= 1e-4
    onnx = medtune.predict(exported.model, images)
    assert onnx["label"].tolist() == before["label"].tolist()

    # the file changes after training: the run's own copy is used, and it is said
    path.write_text(SMALL.replace("nn.Linear(16, num_classes)", "nn.Linear(16, num_classes, bias=False)"))
    capsys.readouterr()
    after = medtune.predict(out, images)
    assert "changed (sha256" in capsys.readouterr().err
    pd.testing.assert_frame_equal(before.to_frame(), after.to_frame())
    with pytest.raises(ConfigError, match="is not the code the run started with"):
        medtune.train(config, out, progress=False)  # the same --out, other code: refused, nothing overwritten
    path.write_text(SMALL)
    other = medtune.train(load_config(**{**config.model_dump(exclude_unset=True), "lr": 4e-3}), tmp_path / "other",
                          progress=False)  # fmt: skip
    ensemble = create_ensemble([out, other.run.path], tmp_path / "ensemble")
    # the file is gone: the runs and their ensemble still load and evaluate from their copies
    shutil.rmtree(nets)
    assert load_trained(out).network.attr == "SmallNet"
    assert medtune.evaluate(out).metrics["macro"]["auc"] == pytest.approx(result.metrics["macro"]["auc"])
    again = medtune.evaluate(ensemble.run.path).metrics["macro"]["auc"]
    assert again == pytest.approx(ensemble.metrics["macro"]["auc"])


def test_network_whose_output_is_not_a_linear_layer_fine_tunes_but_cannot_train_a_head_alone(tmp_path):
    path = write(tmp_path, "small.py", SMALL)
    keys = {**KEYS, "epochs": 1}
    with pytest.raises(ConfigError, match=r"strategy=freeze trains a head .* has none; use strategy=finetune"):
        medtune.train(load_config(data=_data(), backbone=f"{path}:ConvHead", strategy="freeze", **keys),
                      tmp_path / "frozen", progress=False)  # fmt: skip
    result = medtune.train(load_config(data=_data(), backbone=f"{path}:ConvHead", **keys), tmp_path / "whole",
                           progress=False)  # fmt: skip
    assert 0.0 <= result.metrics["macro"]["auc"] <= 1.0


def test_network_from_a_file_is_a_leaderboard_row_beside_lite0(tmp_path):
    path = write(tmp_path, "small.py", SMALL)
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    swept = medtune_cli("sweep", _data(), *FAST, f"backbone=tf_efficientnet_lite0,{path}:SmallNet",
                        "--storage", storage, "--study", "mine", cwd=tmp_path)  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    ran = medtune_cli("queue", "run", "--workers", "1", "--storage", storage, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    board = tmp_path / "board.csv"
    shown = medtune_cli("leaderboard", "--storage", storage, "-s", "mine", "-f", "csv", "-o", board, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    frame = pd.read_csv(board)
    assert sorted(frame["backbone"]) == sorted(["tf_efficientnet_lite0", f"{path}:SmallNet"])
    assert (frame["state"] == "finished").all() and frame["val_auc"].notna().all()
    params = dict(zip(frame["backbone"], frame["params"], strict=True))
    assert params[f"{path}:SmallNet"] < params["tf_efficientnet_lite0"] / 100  # its own size, not lite0's
