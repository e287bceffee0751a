"""Your own network from a file, a module or the registry: building, fitting to a Classifier, and broken files."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from medtune.cams.layers import find_target_layer
from medtune.errors import ConfigError
from medtune.models import create_classifier, resolve_preprocessing
from medtune.models.custom import USER_BACKBONES, is_custom, network_source, register_backbone
from medtune.models.custom_build import NoHead

SMALL = """
import torch
from torch import nn


class SmallNet(nn.Module):
    def __init__(self, num_classes, in_chans):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def small_net(num_classes, in_chans, pretrained=False):
    return SmallNet(num_classes, in_chans)


class ConvHead(nn.Module):  # ends in a 1x1 convolution: no linear head to take apart
    def __init__(self, num_classes, in_chans):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, num_classes, 1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


ConvHead.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "input_size": (3, 96, 96)}
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def small_file(tmp_path):
    return write(tmp_path, "small.py", SMALL)


def test_is_custom_tells_files_modules_and_registered_names_from_timm_names():
    assert is_custom("nets/small.py:SmallNet") and is_custom("pkg.nets:SmallNet")
    assert not is_custom("resnet18") and not is_custom("hf-hub:timm/resnet18") and not is_custom(None)


def test_network_from_a_file_becomes_body_and_its_own_linear_head(small_file):
    model = create_classifier(f"{small_file}:SmallNet", num_classes=3, in_chans=1).eval()
    assert isinstance(model.backbone.classifier[1], nn.Identity)  # the head was taken out of the body
    assert isinstance(model.head[0], nn.Linear) and model.head[0].out_features == 3
    images = torch.randn(4, 1, 40, 40)
    features = model.backbone(images)
    assert features.shape == (4, 16)
    assert torch.allclose(model(images), model.head(features))
    # another head replaces the network's last layer, over the same features
    bn = create_classifier(f"{small_file}:small_net", 3, in_chans=1, head="pool-bn-dropout")
    assert isinstance(bn.head[0], nn.BatchNorm1d) and bn.head[0].num_features == 16


def test_network_without_a_linear_output_stays_whole(small_file):
    model = create_classifier(f"{small_file}:ConvHead", num_classes=2, in_chans=3)
    assert isinstance(model.head[0], NoHead) and model.head[0].out_features == 2
    assert not list(model.head.parameters())
    with pytest.raises(ConfigError, match="does not come from one; leave head= unset"):
        create_classifier(f"{small_file}:ConvHead", 2, head="pool-bn-dropout")


def test_preprocessing_is_imagenet_unless_the_network_declares_its_own(small_file):
    default = resolve_preprocessing(f"{small_file}:SmallNet", in_chans=3)
    assert default.mean == (0.485, 0.456, 0.406) and default.input_size == (3, 224, 224)
    assert default.interpolation == "bilinear"
    declared = resolve_preprocessing(f"{small_file}:ConvHead", in_chans=1)
    assert declared.mean == (0.5,) and declared.std == (0.25,) and declared.input_size == (1, 96, 96)


def test_grad_cam_layer_of_a_network_without_timm_features_is_its_last_convolution(small_file):
    model = create_classifier(f"{small_file}:SmallNet", 2, in_chans=1)
    assert find_target_layer(model.backbone, image_size=32)[0] == "features.3"
    assert find_target_layer(model.backbone, "features.0")[0] == "features.0"


def test_network_from_a_module_of_a_package(tmp_path, monkeypatch):
    package = tmp_path / "mynets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package, "small.py", SMALL)
    monkeypatch.syspath_prepend(str(tmp_path))
    source = network_source("mynets.small:SmallNet")
    assert source.kind == "module" and source.file == str(package / "small.py") and len(source.sha256) == 64
    assert create_classifier("mynets.small:SmallNet", 2, in_chans=1)(torch.zeros(1, 1, 32, 32)).shape == (1, 2)
    with pytest.raises(ConfigError, match=r"no module 'mynets\.nope' can be imported"):
        network_source("mynets.nope:SmallNet")


def test_register_backbone_records_the_file_that_defines_it(small_file, monkeypatch):
    monkeypatch.setattr("medtune.models.custom.USER_BACKBONES", dict(USER_BACKBONES))
    monkeypatch.syspath_prepend(str(small_file.parent))
    module = __import__("small")
    try:
        register_backbone("tinynet")(module.SmallNet)
        register_backbone("tinynet", module.SmallNet)  # the same network again: fine
        with pytest.raises(ConfigError, match="registered already"):
            register_backbone("tinynet", module.small_net)
        with pytest.raises(ConfigError, match="is a timm model name"):
            register_backbone("resnet18", module.SmallNet)
        source = network_source("tinynet")
        assert source.kind == "registered" and source.attr == "SmallNet" and source.file == str(small_file)
        assert create_classifier("tinynet", 2, in_chans=3)(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    finally:
        sys.modules.pop("small", None)


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("import torch\nclass Net(torch.nn.Module)\n    pass\n", "Net", r"line 2: syntax error: expected ':'"),
        ("import no_such_package_here\n", "Net", r"line 1 raised ModuleNotFoundError: No module named"),
        (
            "from torch import nn\nclass Net(nn.Module):\n    pass\n",
            "Nett",
            r"no class or function 'Nett'. Did you "
            r"mean 'Net'\? It defines: Net",
        ),
        (
            "from torch import nn\n\ndef net(num_classes):\n    return nn.Linear(3, num_classes)\n",
            "net",
            r"line 3: net must take num_classes and in_chans .*add in_chans",
        ),
        (
            "def net(num_classes, in_chans):\n    raise ValueError('no weights file')\n",
            "net",
            r"line 2: net\(num_classes=2, in_chans=1\) raised ValueError: no weights file",
        ),
        ("def net(num_classes, in_chans):\n    return 3\n", "net", r"line 1: .*returned int, expected an nn.Module"),
        (
            "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, num_classes, in_chans):\n"
            "        super().__init__()\n        self.fc = nn.Linear(in_chans, 10)\n\n    def forward(self, x):\n"
            "        return self.fc(x.mean((2, 3)))\n",
            "Net",
            r"line 3: Net returned outputs of shape \(2, 10\) .* expected class scores of shape \(2, 2\)",
        ),
        (
            "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, num_classes, in_chans):\n"
            "        super().__init__()\n        self.fc = nn.Linear(in_chans, num_classes)\n\n"
            "    def forward(self, x):\n        return self.fc(x)\n",
            "Net",
            r"line 9: the network failed on a batch of 2 images of 1x64x64: RuntimeError",
        ),
    ],
    ids=["syntax", "import", "missing-name", "parameters", "raises", "not-a-module", "output-shape", "forward"],
)
def test_broken_network_file_is_named_with_its_line(tmp_path, text, name, message):
    path = tmp_path / "broken.py"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        create_classifier(f"{path}:{name}", num_classes=2, in_chans=1)
    assert str(path) in str(caught.value)


def test_missing_file_and_bad_spec_say_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match=r"network file .*nope.py does not exist"):
        create_classifier(f"{tmp_path}/nope.py:Net", 2)
    with pytest.raises(ConfigError, match=r"give path/to/file\.py:NAME or package\.module:NAME"):
        create_classifier(f"{tmp_path}/nets.py:", 2)
    with pytest.raises(ConfigError, match=r"weights=.*w.pth loads into timm backbones"):
        create_classifier(f"{write(tmp_path, 's.py', SMALL)}:SmallNet", 2, weights=str(tmp_path / "w.pth"))


def test_the_example_networks_build_with_their_own_heads():
    from tests.conftest import REPO

    spec = f"{REPO / 'examples' / 'networks' / 'seed_models.py'}"
    lite = create_classifier(f"{spec}:Lite0MLPHead", 2, in_chans=1)  # the packaged ImageNet weights
    assert lite.head[0].in_features == 256 and isinstance(lite.backbone.classifier, nn.Identity)
    assert resolve_preprocessing(f"{spec}:Lite0MLPHead", 1).mean == (0.5,)
    for name in ("resnet18_dropout", "SmallCNN"):
        model = create_classifier(f"{spec}:{name}", 3, in_chans=1).eval()
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
        assert find_target_layer(model.backbone, image_size=64)[1].__class__ is nn.Conv2d
