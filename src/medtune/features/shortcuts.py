"""``medtune data shortcuts``: can the images tell their source apart, and could a class be told by its source?

A probe (frozen ImageNet backbone features and a logistic regression, cross-validated out of fold, grouped by
patient where there are groups) learns to tell the domains apart on the same images, once on whole images and
once on their borders only (the centre blacked out: where text, markers and collimation live). Its AUC with a
bootstrap interval says how visible the source is. Beside it, the class x domain table says where a classifier
could score by recognising the source: a class that one domain holds almost alone, and that makes up most of
that domain, is flagged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from medtune.config import Config
from medtune.data.table import Table, split_labels
from medtune.errors import ConfigError, DataError
from medtune.models.inference import Normalize
from medtune.runs import prepare_dataset, read_dataset_table

#: Share of the image kept on each side by the border probe (the centre is blacked out).
BORDER = 0.15
#: A class is flagged when one domain holds at least this share of its images...
CONFINED = 0.9
#: ...and the class makes up at least this share of that domain.
DOMINANT = 0.6
_BATCH = 64


@dataclass
class ShortcutReport:
    """What the probe found.

    Attributes:
        domains: the domain names, in the probe's class order.
        whole: the probe's metrics on whole images (``compute_metrics``: macro AUC with its interval...).
        border: the same on borders only.
        counts: images per class (rows) and domain (columns).
        warnings: one sentence per class a classifier could find by its source.
    """

    domains: list[str]
    whole: dict[str, Any]
    border: dict[str, Any]
    counts: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def class_domain_warnings(counts: pd.DataFrame) -> list[str]:
    """Sentences for the classes one domain holds almost alone (`CONFINED`) while making up most of it
    (`DOMINANT`): recognising that domain is as good as recognising the class.

    >>> counts = pd.DataFrame({"nih": [0, 500, 500], "ieee": [124, 0, 0]}, index=["covid", "normal", "pneumonia"])
    >>> class_domain_warnings(counts)[0][:44]
    'class covid comes only from domain ieee (124'
    """
    found = []
    for name, row in counts.iterrows():
        total = row.sum()
        if total == 0:
            continue
        domain = row.idxmax()
        held, share = row[domain] / total, row[domain] / max(1, counts[domain].sum())
        if held >= CONFINED and share >= DOMINANT:
            where = "only from" if held == 1 else f"{held:.0%} from"
            found.append(
                f"class {name} comes {where} domain {domain} ({int(row[domain])} images, {share:.0%} of that "
                f"domain); a classifier can reach a high AUC for {name} by recognising the source, so judge it on "
                "data where the class comes from several sources"
            )
    return found


def table_shortcuts(table: Table) -> tuple[pd.DataFrame, list[str]]:
    """The class x domain counts of a labelled table with a ``domain`` column (a multi-label image counts for each
    of its findings) and `class_domain_warnings` on them; no counts and no warnings without two domains.

    >>> from medtune.data.table import create_table
    >>> frame = pd.DataFrame({"path": list("abcd"), "label": ["covid", "normal", "normal", "pneumonia"],
    ...                       "domain": ["ieee", "nih", "nih", "nih"]})
    >>> table_shortcuts(create_table(frame))[1][0][:38]
    'class covid comes only from domain iee'
    """
    frame = table.frame
    if "domain" not in frame or frame["domain"].dropna().nunique() < 2 or not table.labelled:
        return pd.DataFrame(), []
    frame = frame[frame["domain"].notna()]
    labels = frame["label"].map(split_labels) if table.multilabel else frame["label"].map(lambda v: [v])
    pairs = pd.DataFrame({"label": labels, "domain": frame["domain"].astype(str)}).explode("label").dropna()
    counts = pd.crosstab(pairs["label"], pairs["domain"])
    return counts, class_domain_warnings(counts)


def _centre_blacked(images: torch.Tensor, border: float) -> torch.Tensor:
    out = images.clone()
    size = images.shape[-1]
    lo, hi = round(size * border), size - round(size * border)
    out[..., lo:hi, lo:hi] = 0
    return out


@torch.inference_mode()
def _features(model: torch.nn.Module, normalize: Normalize, store: Any, border: float | None) -> np.ndarray:
    chunks = []
    for start in range(0, len(store), _BATCH):
        images = torch.from_numpy(np.array(store.images[start : start + _BATCH])).permute(0, 3, 1, 2)
        if border is not None:
            images = _centre_blacked(images, border)
        chunks.append(model(normalize(images)).float().numpy())
    return np.concatenate(chunks)


def _probe(features: np.ndarray, targets: np.ndarray, groups: np.ndarray | None, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of a standardised logistic regression (5 folds, grouped when there are groups)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(5, int(np.bincount(targets).min()))
    if folds < 2:
        raise DataError("a domain has fewer than 2 images; the probe needs at least 2 per domain")
    split = (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if groups is not None
             else StratifiedKFold(folds, shuffle=True, random_state=seed))  # fmt: skip
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # folds with uneven groups
        return cross_val_predict(probe, features, targets, cv=split, groups=groups, method="predict_proba")


def probe_shortcuts(config: Config, border: float = BORDER, progress: bool = True) -> ShortcutReport:
    """Run the domain probe on `config`'s data (``domain=COLUMN`` required) and tabulate classes by domain.

    Raises:
        ConfigError: no ``domain=`` column, or fewer than two domains.
    """
    from medtune.metrics.classification import compute_metrics
    from medtune.models import create_model

    if not config.domain:
        raise ConfigError("the probe tells domains apart: give domain=COLUMN (the source, hospital or device column)")
    table = read_dataset_table(config, progress=progress)
    table = table.with_frame(table.frame[table.frame["domain"].notna()])  # images without a source say nothing
    dataset = prepare_dataset(config, table=table, assign_missing=False, progress=progress)
    frame = dataset.table.frame
    domains = sorted(frame["domain"].dropna().astype(str).unique())
    if len(domains) < 2:
        raise ConfigError(f"domain={config.domain} has {len(domains)} value(s) in {config.data}; the probe needs two")
    targets = frame["domain"].astype(str).map({d: i for i, d in enumerate(domains)}).to_numpy()
    groups = frame["group"].to_numpy() if frame["group"].notna().all() else None
    resolved = dataset.resolved
    model = create_model(config.backbone, num_classes=0, in_chans=resolved.in_chans, pretrained=config.pretrained,
                         weights=config.weights).eval()  # fmt: skip
    normalize = Normalize(resolved.preprocessing, channels_last=False)
    results = []
    for cut in (None, border):
        probs = _probe(_features(model, normalize, dataset.store, cut), targets, groups, config.seed)
        results.append(compute_metrics(targets, probs, domains, seed=config.seed))
    counts = pd.crosstab(frame["label"], frame["domain"].astype(str)).reindex(columns=domains, fill_value=0)
    return ShortcutReport(domains, results[0], results[1], counts, class_domain_warnings(counts))
