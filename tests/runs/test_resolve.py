"""One resolution of a configuration against its data: `data summary` and `train` agree on every shared dataset,
and registered names are checked against their registries."""

from __future__ import annotations

import json

import pytest

from medtune.config import load_config
from medtune.errors import ConfigError
from medtune.runs import check_names, network_channels, prepare_dataset, read_dataset_table, resolve_config
from tests.conftest import medtune, shared_path

#: Every source in ../shared/data with its extra keys, and the size and channels a user should see for it.
SOURCES = [
    (("pneumoniamnist", "pneumoniamnist.npz"), {}, 64, 1),  # 28 px images: 64, not the backbone's 224
    (("retinamnist", "retinamnist.npz"), {}, 64, 3),
    (("cxr3",), {}, 224, 1),
    (("cxr3", "labels.csv"), {"label": "label", "group": "patient_id"}, 224, 1),
    (("cxr-fullres",), {}, 224, 3),  # one figure cut from a PDF is a colour JPEG
    (("dicom",), {}, 224, 1),
    (("lc25000-lung",), {}, 224, 3),
    (("lungseg", "images"), {}, 224, 1),
    (("pathology-tiles",), {}, 224, 3),
]


@pytest.mark.parametrize(("parts", "keys", "size", "channels"), SOURCES, ids=["/".join(s[0]) for s in SOURCES])
def test_data_summary_and_train_resolve_the_same(parts, keys, size, channels):
    config = load_config(data=str(shared_path(*parts)), **keys)
    summary = prepare_dataset(config, labelled=None, store=False).resolved  # what `medtune data summary` shows
    table = read_dataset_table(config, labelled=None)
    trained = resolve_config(config, table)  # what `medtune train` resolves before it creates the run
    assert (summary.image_size, summary.channels) == (trained.image_size, trained.channels) == (size, channels)
    assert summary.preprocessing == trained.preprocessing
    assert trained.preprocessing.input_size[0] == trained.in_chans == channels


@pytest.mark.parametrize("parts", [("pneumoniamnist", "pneumoniamnist.npz"), ("pathology-tiles",), ("dicom",)])
def test_data_summary_command_prints_the_resolved_size(parts, tmp_path):
    data = shared_path(*parts)
    result = medtune("data", "summary", data, "--out", tmp_path / "s.json")
    assert result.returncode in (0, 1), result.stderr  # 1: the data has problems to fix (it still summarises)
    written = json.loads((tmp_path / "s.json").read_text())
    resolved = resolve_config(load_config(data=str(data)), read_dataset_table(load_config(data=str(data)), None))
    assert (written["image_size"], written["channels"]) == (resolved.image_size, resolved.channels)


def test_mask_channel_adds_a_network_input_channel():
    config = load_config(data=str(shared_path("lungseg", "images")), masks=str(shared_path("lungseg", "masks")),
                         mask="channel", image_size=32)  # fmt: skip
    resolved = prepare_dataset(config, labelled=None, store=False).resolved
    assert (resolved.channels, resolved.in_chans, network_channels(resolved.config)) == (1, 2, 2)
    assert len(resolved.preprocessing.mean) == 2


def test_unknown_component_names_suggest_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown head 'pool-bn'.*Did you mean 'pool-bn-dropout'"):
        check_names(load_config(head="pool-bn"))
    with pytest.raises(ConfigError, match=r"unknown scheduler 'cosin'.*Did you mean 'cosine'"):
        resolve_config(load_config(scheduler="cosin", channels=1, image_size=32))
    with pytest.raises(ConfigError, match=r"unknown loss 'focall'"):
        check_names(load_config(loss="focall"))


def test_a_newly_registered_scheduler_is_accepted_without_touching_the_schema():
    from medtune.training.optim import SCHEDULERS, warmup_schedule

    name = "test-linear-decay"
    if name not in SCHEDULERS:
        SCHEDULERS.register(name)(warmup_schedule(lambda progress, epoch, c: 1.0 - progress))
    config = load_config(scheduler=name, channels=1, image_size=32)
    assert resolve_config(config).config.scheduler == name


def test_unresolved_auto_keys_need_the_data():
    with pytest.raises(ConfigError, match="needs the data"):
        resolve_config(load_config())


@pytest.mark.parametrize(
    ("parts", "keys", "epochs"),
    [
        (("pneumoniamnist", "pneumoniamnist.npz"), {}, 5),  # 4708 given training images
        (("retinamnist", "retinamnist.npz"), {}, 20),  # 1080 training images: 23, capped at the most epochs
        (("retinamnist", "retinamnist.npz"), {"train_limit": 600, "epochs": None}, 20),
        (("pneumoniamnist", "pneumoniamnist.npz"), {"epochs": 3}, 3),  # given: kept
        (("pneumoniamnist", "pneumoniamnist.npz"), {"train_limit": 3000}, 8),
        (("lc25000-lung",), {"limit": 2000}, 20),  # 600 images, no split: 70% train
    ],
)
def test_epochs_scale_with_the_training_split(parts, keys, epochs):
    config = load_config(data=str(shared_path(*parts)), **keys)
    resolved = resolve_config(config, read_dataset_table(config, labelled=True)).config
    assert resolved.epochs == epochs


def test_segmenters_keep_twelve_epochs():
    assert load_config(task="segment").epochs == 12 and load_config().epochs is None
