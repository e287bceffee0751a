"""Names and value rules the configuration checks, kept here so that the readers and the trainer that use them
apply the same rule: the DICOM window text, and the validation metrics that can choose a checkpoint."""

from __future__ import annotations

from medtune.errors import ConfigError

#: Names logged per epoch, with the train_/val_ prefix: ``val_auc``, ``train_loss``...
EPOCH_METRICS: tuple[str, ...] = ("loss", "acc", "balanced_acc", "f1", "auc", "nll")
#: Names logged per epoch by segmentation runs (``task=segment``), with the train_/val_ prefix.
SEGMENT_METRICS: tuple[str, ...] = ("loss", "dice", "iou")
#: Validation metrics that can pick the best checkpoint and stop training early.
MONITORS: tuple[str, ...] = (*(f"val_{name}" for name in EPOCH_METRICS), "val_dice", "val_iou")


def monitor_mode(monitor: str) -> str:
    """``"min"`` for a loss (the training loss or the plain log loss ``nll``), ``"max"`` for every other metric.

    >>> monitor_mode("val_loss"), monitor_mode("val_nll"), monitor_mode("val_auc")
    ('min', 'min', 'max')
    """
    return "min" if monitor.endswith(("loss", "nll")) else "max"


def parse_window(window: str) -> str | tuple[float, float]:
    """``auto`` or ``none``, or the ``(centre, width)`` of a ``"CENTRE,WIDTH"`` text.

    Raises:
        ConfigError: anything else, or a width that is not positive.
    """
    text = str(window).strip().lower()
    if text in ("auto", "none"):
        return text
    parts = text.split(",")
    try:
        centre, width = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        centre = width = None
    if centre is None or width is None or not width > 0:
        raise ConfigError(f"window {window!r} is unknown; expected auto, none or CENTRE,WIDTH with a positive width, "
                          "e.g. window=40,400")  # fmt: skip
    return centre, width
