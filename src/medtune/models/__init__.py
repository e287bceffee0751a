"""Networks: timm backbones with a classification head, their weights and their preprocessing.

- `backbones`: timm's models under timm's names, with weights that work without a network; `weights` and `hub`:
  where weights come from, checked before timm asks a hub.
- `heads`: the registered heads and the `Classifier`; `stages`: a backbone's stages for ``freeze=N``.
- `custom` and `custom_build`: your own network from a file, a module or `register_backbone`.
- `averaged`: several trained classifiers as one network; `segmenters`: smp networks on timm encoders.
- `preprocessing`: what a backbone expects; `inference`: the bare `InferenceModel` (normalisation, memory
  layout, softmax or sigmoid).

>>> from medtune.models import create_model, resolve_preprocessing
>>> model = create_model("tf_efficientnet_lite0", num_classes=2)
>>> resolve_preprocessing("tf_efficientnet_lite0").input_size
(3, 224, 224)
"""

from medtune.models.backbones import DEFAULT_BACKBONES, create_model, list_models
from medtune.models.heads import HEADS, Classifier, create_classifier, list_heads
from medtune.models.preprocessing import Preprocessing, resolve_preprocessing

__all__ = [
    "DEFAULT_BACKBONES",
    "HEADS",
    "Classifier",
    "Preprocessing",
    "create_classifier",
    "create_model",
    "list_heads",
    "list_models",
    "resolve_preprocessing",
]
