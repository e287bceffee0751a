"""medtune.train, ensemble, crossdomain, sweep and tune from Python: configuration keys as keyword arguments; a
sweep's lists are swept and its ``LOW..HIGH`` texts are ranges, queued in a real SQLite queue; refusals come from
the library with the fix. (Training itself: tests/fitting/test_train.py and the example notebook.)"""

from __future__ import annotations

import pytest

import medtune
from medtune.data import demo_data
from medtune.errors import ConfigError
from medtune.experiments import QueueStorage


def test_a_sweep_queues_the_grid_of_its_lists(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    queued = medtune.sweep(demo_data(), storage=url, epochs=2, optimizer=["adamw", "sgd"], lr=[1e-3, 1e-2])
    assert queued.study == "sweep-1" and len(queued.ids) == 4 and queued.storage == url
    trials = QueueStorage(url).trials()
    swept = [t.system_attrs["fixed_params"] for _, t in trials]
    assert sorted((values["optimizer"], values["lr"]) for values in swept) == [
        ("adamw", 0.001), ("adamw", 0.01), ("sgd", 0.001), ("sgd", 0.01)]  # fmt: skip
    searched = medtune.sweep(data=str(demo_data()), storage=url, study="search", search=3, lr="1e-4..1e-2:log",
                             backbone=["tf_efficientnet_lite0"])  # fmt: skip
    assert searched.study == "search" and len(searched.ids) == 3
    with pytest.raises(ConfigError, match="is a range: a grid needs lists"):
        medtune.sweep(demo_data(), storage=url, lr="1e-4..1e-2")
    with pytest.raises(ConfigError, match="a swept value cannot hold a comma"):
        medtune.sweep(demo_data(), storage=url, label=["a,b", "c"])


def test_studies_refuse_what_they_cannot_run(tmp_path):
    with pytest.raises(ConfigError, match="give two or more datasets"):
        medtune.crossdomain([demo_data()], out=tmp_path / "matrix", epochs=1)
    with pytest.raises(ConfigError, match="'soon': give a time such as 30m"):
        medtune.tune(demo_data(), budget="soon", storage=f"sqlite:///{tmp_path / 'queue.db'}")
    with pytest.raises(ConfigError, match="an ensemble needs two runs or more"):
        medtune.ensemble([tmp_path], tmp_path / "ensemble")
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'\. Did you mean 'epochs'"):
        medtune.train(data=str(demo_data()), epoch=1)
