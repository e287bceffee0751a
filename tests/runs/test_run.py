"""Run directories: default names, numbering, resuming and refusing to overwrite."""

from __future__ import annotations

import pytest

from medtune.config import load_config
from medtune.errors import ConfigError, DataError
from medtune.runs.run import Run, default_run_name, open_run, prepare_run


def test_default_names():
    assert default_run_name(load_config(data="x/pneumoniamnist.npz")) == "pneumoniamnist-tf_efficientnet_lite0"
    assert default_run_name(load_config(data="data/cxr3/labels.csv", backbone="resnet18")) == "cxr3-resnet18"
    assert default_run_name(load_config(data="data/cxr3/", name="mine")) == "mine"


def test_prepare_run_states(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(data="/data/x.npz", epochs=2)
    run, resumed = prepare_run(config)
    assert run.path.as_posix() == "runs/x-tf_efficientnet_lite0" and not resumed
    again, resumed = prepare_run(config)  # no checkpoint yet: killed before the first epoch, starts again in place
    assert again == run and not resumed
    run.last_checkpoint.write_bytes(b"checkpoint")
    again, resumed = prepare_run(config)
    assert again == run and resumed
    other, resumed = prepare_run(load_config(data="/data/x.npz", epochs=3))
    assert other.path.name == "x-tf_efficientnet_lite0-2" and not resumed
    assert prepare_run(load_config(data="/data/x.npz", epochs=2, workers=0))[1]  # runtime keys do not count

    with pytest.raises(ConfigError, match=r"another configuration .*epochs: 2 -> 3"):
        prepare_run(load_config(data="/data/x.npz", epochs=3), out=run.path)
    run.best_checkpoint.write_bytes(b"checkpoint")
    run.metrics_file.write_text("{}")
    with pytest.raises(ConfigError, match="already holds a finished run"):
        prepare_run(config, out=run.path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a medtune run"):
        prepare_run(config, out=tmp_path / "mine")


def test_open_run_needs_a_run(tmp_path):
    with pytest.raises(DataError, match="not a medtune run"):
        open_run(tmp_path)
    Run(tmp_path).write_config(load_config())
    with pytest.raises(DataError, match="no checkpoint yet"):
        open_run(tmp_path)
