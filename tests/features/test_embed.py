"""``medtune embed``: pooled features of real images, cached beside the image store and equal to a fresh forward
pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtune.errors import ConfigError
from medtune.features.embed import embed
from medtune.models import create_classifier
from medtune.models.inference import Normalize
from tests.conftest import medtune_subprocess, shared_path


def test_cached_features_equal_a_fresh_forward_pass_and_are_read_back(tmp_path):
    first = embed("tf_efficientnet_lite0", shared_path("cxr3"), {"image_size": 32}, progress=False)
    assert first.features.shape == (1124, 1280) and first.features.dtype == np.float16
    store = np.array(first.table.frame.index[:8])
    from medtune.config import load_config
    from medtune.runs import prepare_dataset

    dataset = prepare_dataset(load_config(data=str(shared_path("cxr3")), image_size=32), labelled=None,
                              assign_missing=False, progress=False)  # fmt: skip
    body = create_classifier("tf_efficientnet_lite0", 1, dataset.resolved.in_chans).backbone.eval()
    images = torch.from_numpy(np.array(dataset.store.images[store])).permute(0, 3, 1, 2)
    with torch.inference_mode():
        fresh = body(Normalize(dataset.resolved.preprocessing, channels_last=False)(images)).numpy()
    assert np.allclose(first.features[:8].astype(np.float32), fresh, rtol=1e-2, atol=2e-3)
    stamp = (first.path / "features.npy").stat().st_mtime_ns
    again = embed("tf_efficientnet_lite0", shared_path("cxr3"), {"image_size": 32}, progress=False)
    assert again.path == first.path and (again.path / "features.npy").stat().st_mtime_ns == stamp


def test_a_run_embeds_with_its_own_backbone_and_size(tiny_run, tmp_path):
    out = tmp_path / "f.npz"
    result = medtune_subprocess("embed", shared_path("cxr3", "normal"), tiny_run, "--out", out)
    assert result.returncode == 0, result.stderr
    saved = np.load(out)
    assert saved["features"].shape == (500, 1280) and len(saved["ids"]) == 500
    base = embed("tf_efficientnet_lite0", shared_path("cxr3", "normal"), {"image_size": 32}, progress=False)
    assert not np.allclose(saved["features"], base.features.astype(np.float32), atol=1e-2)  # fine-tuned weights


def test_an_unknown_source_is_named():
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        embed("tf_efficientnet_lite", shared_path("cxr3"), progress=False)
