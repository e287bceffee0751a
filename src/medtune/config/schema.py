"""The typed configuration: one flat, frozen object with the keys people type (``label=``, ``backbone=``).

A type sits beside its default. Later features add their keys here; the CLI, YAML files and the Python API
all end in this one object. Keys that name a registered component (``reader``, ``head``, ``optimizer``,
``scheduler``, ``loss``, ``augment``) are text here and are checked against their registries by
`medtune.runs.check_names`, so a newly registered component is accepted without touching this schema.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from medtune.config.values import MONITORS, parse_window

#: What ``task=segment`` changes when the key is not given: the loss, the checkpoint metric, the mask kept as the
#: target channel of the image store (`medtune.data.masks`), and a fixed number of epochs.
SEGMENT_DEFAULTS = {"loss": "dice+bce", "monitor": "val_dice", "mask": "channel", "epochs": 12}


def _comma_list(value: object) -> object:
    """Accept ``a,b,c`` as well as a YAML list for list-valued keys."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Config(BaseModel):
    """Every setting medtune knows, with its default. Build one with `medtune.config.load_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @property
    def sections(self) -> Sections:
        """The configuration in sections (data, model, optimisation, schedule, augmentation, run): what a component
        takes instead of the whole `Config` (`SECTION_KEYS`).

        >>> Config(lr=0.01).sections.optimisation.lr
        0.01
        """
        return split_config(self)

    task: str = Field(
        "classify",
        description="classify images, grade them (ordinal: grades in order), or segment them (a mask per image: "
        "medtune segment train); any registered task (medtune.tasks)",
    )
    # --- data: where it is and how to read it -------------------------------------------------------------
    data: str | None = Field(None, description="folder, CSV/TSV manifest or .npz file")
    reader: str = Field("auto", description="reader name (folder, table, npz...) or auto to detect")
    path: str | None = Field(None, description="CSV column with image paths (auto: path, image, file, filename...)")
    outside_paths: bool = Field(
        False, description="CSV: allow relative image paths that climb out of the manifest's folder with '..'"
    )
    label: str | None = Field(None, description="CSV column with the label (auto: label, class, target...)")
    label_from: Literal["folder", "name"] | None = Field(
        None, description="name: the label is the file name's prefix before the first - or _ (ADI-AAQEFMRI.tif)"
    )
    label_pattern: str | None = Field(
        None,
        description="regular expression searched in each file's path with a group (?P<label>...) and optionally "
        "(?P<group>...) (the slide or patient, for grouped splits)",
    )
    labels: list[str] | None = Field(
        None, description="CSV 0/1 columns, one per class (multi-label); with label_sep: one delimited column"
    )
    label_sep: str | None = Field(None, description="separator of several labels in one cell, e.g. '|' (multi-label)")
    no_finding: str = Field("No Finding", description="label value that means no class (multi-label)")
    classes: list[str] | None = Field(None, description="class names in order; npz class names")
    split: str | None = Field(None, description="CSV column with train/val/test")
    group: str | None = Field(None, description="CSV column with the patient (group) id")
    mask_column: str | None = Field(None, description="CSV column with mask paths (auto: mask, mask_path)")
    masks: str | None = Field(None, description="folder of masks paired with the images by file name")
    domain: str | None = Field(None, description="CSV column with the source domain (hospital)")
    domains: list[str] | None = Field(None, description="keep only the images of these domains (domain= values)")
    harmonise: bool = Field(
        False, description="match class names through the chest X-ray synonym table (No Finding = normal...)"
    )
    label_map: str | None = Field(None, description="YAML file of `source label: target label` (null drops it)")
    keep_classes: list[str] | None = Field(None, description="keep only the images of these classes")
    # --- splitting ---------------------------------------------------------------------------------------
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="share of images for validation")
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="share of images for test")
    split_file: str | None = Field(None, description="a split.csv from an earlier run to reuse")
    seed: int = Field(0, ge=0, description="random seed for splits and training")
    # --- image store -------------------------------------------------------------------------------------
    image_size: int | None = Field(None, ge=8, le=2048, description="working size in pixels (default: backbone's)")
    channels: Literal["auto", 1, 3] = Field("auto", description="1 (gray), 3 (colour) or auto from the data")
    resize: Literal["squash", "pad", "crop"] = Field("squash", description="how images reach a square size")
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box"] | None = Field(
        None, description="resampling filter (default: backbone's)"
    )
    cache_dir: str | None = Field(None, description="folder for image stores (default ~/.cache/medtune)")
    workers: int = Field(2, ge=0, le=64, description="processes that decode images when building the store")
    window: str = Field(
        "auto", description="DICOM windowing: auto (the file's VOI LUT or window), none (full range) or CENTRE,WIDTH"
    )
    frame: int | Literal["middle"] | None = Field(
        None, description="multi-frame DICOM: the frame to use (0-based) or middle; unset refuses multi-frame files"
    )
    mask: Literal["none", "multiply", "crop", "channel"] = Field(
        "none", description="use masks: multiply (zero outside), crop (to the mask's box) or channel (extra input)"
    )
    mask_margin: float = Field(0.1, ge=0.0, le=1.0, description="crop: margin around the mask's box, share of its size")
    mask_missing: Literal["error", "whole", "predict"] = Field(
        "error",
        description="an image without a mask: error (list them), whole (use the whole image) or predict "
        "(masks=SEG_RUN segments it)",
    )
    mask_source: Literal["given", "model"] = Field(
        "given", description="masks=SEG_RUN: keep the masks the data gives (given) or predict every mask (model)"
    )
    # --- network -----------------------------------------------------------------------------------------
    backbone: str = Field("tf_efficientnet_lite0", description="timm model name")
    pretrained: bool = Field(True, description="start from ImageNet weights")
    weights: str | None = Field(None, description="local weights file for the backbone")
    head: str = Field("linear", description="classifier head on pooled features (a registered head: linear, ...)")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout before the head's last layer")
    arch: str = Field(
        "unet", description="segmentation architecture (smp): unet, unetplusplus, fpn, deeplabv3plus, linknet..."
    )
    postprocess: Literal["none", "lungs"] = Field(
        "none", description="predicted masks: none, or lungs (keep the two largest regions, fill holes)"
    )
    # --- training ----------------------------------------------------------------------------------------
    name: str | None = Field(None, description="run name: runs/<name> (default: data and backbone names)")
    strategy: Literal["finetune", "freeze", "gradual"] = Field(
        "finetune", description="train all layers, only the head (frozen backbone), or the head first then all"
    )
    freeze_epochs: int = Field(1, ge=0, description="gradual: epochs that train the head alone")
    unfreeze: Literal["all", "stages"] = Field(
        "all",
        description="gradual, after the head's epochs: all (the whole backbone at once) or stages (one more "
        "backbone stage per epoch, the last first, the stem last)",
    )
    freeze: int | Literal["all"] = Field(
        0,
        description="freeze the stem and the first N stages of the backbone (timm's feature stages), batch-norm "
        "statistics included; all: the whole backbone; 0: none",
    )
    lr_decay: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="layer-wise learning-rate decay: the last backbone stage learns at lr x this, each earlier "
        "stage at this times the next one's rate (timm's layer decay); 1: off",
    )
    backbone_lr_scale: float = Field(
        0.1, gt=0.0, le=1.0, description="gradual: backbone learning rate = lr x this (finetune uses lr)"
    )
    epochs: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="passes over the training split (default: scaled to its size, about "
        "25,000 images seen, 4 to 20 epochs; segmenters 12)",
    )
    batch_size: int = Field(32, ge=1, le=65_536, description="images per training step")
    lr: float = Field(2e-3, gt=0.0, le=10.0, description="peak learning rate")
    optimizer: str = Field("adamw", description="a registered optimizer: sgd, adam, adamw, adamax, adagrad...")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd momentum")
    nesterov: bool = Field(True, description="sgd Nesterov momentum")
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="weight decay (decoupled for adamw)")
    scheduler: str = Field(
        "cosine", description="a registered learning-rate schedule: cosine, one-cycle, step, constant..."
    )
    warmup_epochs: float = Field(1.0, ge=0.0, description="epochs of linear warm-up (one-cycle: its own ramp)")
    step_epochs: int = Field(5, ge=1, description="step schedule: epochs between decays")
    step_gamma: float = Field(0.1, gt=0.0, le=1.0, description="step schedule: factor per decay")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="label smoothing of the loss")
    loss: str = Field(
        "cross-entropy", description="a registered loss: cross-entropy (BCE for multi-label) or focal for rare classes"
    )
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0, description="focal loss: down-weighting of easy examples")
    threshold: Literal["youden", "f1"] = Field(
        "youden", description="multi-label: per-label threshold chosen on validation by Youden's J or best F1"
    )
    class_weights: Literal["none", "auto"] | list[float] = Field(
        "none",
        description="loss weight per class: none, auto (inverse frequency; multi-label: negatives/positives per "
        "label, at most 20) or a list",
    )
    sampler: Literal["random", "weighted"] = Field(
        "random", description="weighted draws every class (multi-label: finding) about equally often per epoch"
    )
    augment: str = Field(
        "medical", description="a registered augmentation preset (none, flip, medical...); the keys below override it"
    )
    hflip: float | None = Field(None, ge=0.0, le=1.0, description="probability of a horizontal flip")
    vflip: float | None = Field(None, ge=0.0, le=1.0, description="probability of a vertical flip")
    rotate: float | None = Field(None, ge=0.0, le=180.0, description="largest rotation in degrees")
    crop_scale: float | None = Field(
        None, gt=0.0, le=1.0, description="random resized crop keeps at least this share of the area (1 = off)"
    )
    brightness: float | None = Field(None, ge=0.0, le=1.0, description="brightness jitter (0.1 = +-10%)")
    contrast: float | None = Field(None, ge=0.0, le=1.0, description="contrast jitter (0.1 = +-10%)")
    augment_strength: float = Field(
        1.0, ge=0.0, le=3.0, description="scales the preset's rotation, crop and jitter (0 = flips only, 2 = double)"
    )
    mixup: float = Field(0.0, ge=0.0, le=4.0, description="mixup's Beta alpha (timm; 0 = off, 0.2-0.4 usual)")
    cutmix: float = Field(0.0, ge=0.0, le=4.0, description="cutmix's Beta alpha (timm; 0 = off, 1.0 usual)")
    monitor: str = Field("val_auc", description="validation metric for the best checkpoint and early stopping")
    keep: Literal["auto", "best", "last"] = Field(
        "auto",
        description="weights to keep: best (validation), last, or auto (the last epoch unless the best one wins "
        "95% of paired bootstrap resamples of the validation images, or early stopping ended training)",
    )
    patience: int = Field(6, ge=0, description="early stopping: epochs without improvement (0 = never stop)")
    limit: int | None = Field(None, ge=1, description="keep at most this many images per split (quick trials)")
    train_limit: int | None = Field(
        None, ge=1, description="keep at most this many training images, val and test whole (small-data trials)"
    )
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: mixed precision on a GPU, 32-bit on the CPU"
    )
    devices: int | str = Field(
        "auto", description="Lightning devices (auto, 1, 2, '0,1'...); several run Lightning's DDP (CPU: gloo)"
    )
    num_nodes: int = Field(1, ge=1, le=4096, description="machines in distributed training (SLURM or torchrun)")
    distributed: str = Field(
        "auto", description="Lightning's distributed strategy for devices > 1 (auto: DDP; ddp_spawn, fsdp...)"
    )
    accelerator: str = Field("auto", description="Lightning accelerator (auto, cpu, gpu)")
    threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="CPU threads for training: 0 uses every core and fewer while other processes "
        "keep cores busy; N pins N",
    )
    channels_last: bool = Field(True, description="channels-last memory layout (about 2x faster on the CPU)")
    cache_features: bool = Field(
        True,
        description="strategy=freeze with augment=none: train the head on features computed once (false: run "
        "the frozen backbone in every epoch)",
    )
    tta: bool = Field(False, description="evaluate and predict with horizontal-flip test-time augmentation")
    report: bool = Field(True, description="write report.html (curves, ROC, mistakes with Grad-CAM...) at the end")
    read_test: bool = Field(
        True,
        description="evaluate the test split at the end of training (false: the validation split, so that a search "
        "such as medtune tune reads the test split once, with its final model)",
    )
    guard: bool = Field(
        True,
        description="after training a classifier, fit its guard (does an image look like the training images? "
        "predict and serve say so per image; see medtune guard)",
    )
    shortcut_check: bool = Field(
        True,
        description="before training, warn about classes that come from one source (a domain column: domain=, "
        "or a column named source, site, hospital, scanner...)",
    )
    logger: Literal["csv", "tensorboard", "mlflow"] = Field(
        "csv",
        description="where a run is tracked besides history.csv: csv (history.csv only), tensorboard (event files in "
        "RUN/tensorboard) or mlflow (an MLflow run: the configuration, each epoch's metrics, the kept epoch, the "
        "test metrics, the report and metrics.json); tensorboard and mlflow need pip install 'medtune[tracking]'",
    )
    tracking_uri: str | None = Field(
        None,
        description="logger=mlflow: the MLflow store or server (sqlite:///path.db, http://host:5000); default: "
        "the MLFLOW_TRACKING_URI environment variable, else sqlite:///mlflow.db in the folder that holds the run",
    )
    tracking_experiment: str | None = Field(
        None,
        description="logger=mlflow: the MLflow experiment the run joins; default: the study's name for trials "
        "of medtune sweep, queue and tune, else medtune",
    )

    _split_lists = field_validator("labels", "classes", "domains", "keep_classes", mode="before")(_comma_list)

    @field_validator("class_weights", mode="before")
    @classmethod
    def _weights_list(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("none", "auto"):
            return [float(v) for v in value.split(",")] if "," in value else value
        return value

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("monitor")
    @classmethod
    def _known_monitor(cls, value: str) -> str:
        if value not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}")
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_int(cls, value: object) -> object:
        return int(value) if isinstance(value, str) and value.isdigit() else value

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze_stages(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError("freeze must be 0 or more stages, or all")
        return value

    @field_validator("frame", mode="before")
    @classmethod
    def _frame_int(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError("frame must be 0 or more (the first frame is 0), or middle")
        return value

    @field_validator("window")
    @classmethod
    def _window_text(cls, value: str) -> str:
        choice = parse_window(value)
        return choice if isinstance(choice, str) else f"{choice[0]:g},{choice[1]:g}"

    @model_validator(mode="before")
    @classmethod
    def _segment_defaults(cls, values: object) -> object:
        """``task=segment``: the segmentation loss and metric unless given; the mask is the target channel."""
        if not isinstance(values, dict) or values.get("task") != "segment":
            return values
        mask = values.get("mask")
        if mask not in (None, "channel"):
            raise ValueError(f"task=segment trains on masks as targets, so mask={mask} does not apply; leave mask= out")
        return {**SEGMENT_DEFAULTS, **{k: v for k, v in values.items() if v is not None}}

    @model_validator(mode="before")
    @classmethod
    def _delimited_labels_column(cls, values: object) -> object:
        """``labels=COLUMN label_sep=SEP``: one column with a separator is the delimited column ``label=COLUMN``."""
        if isinstance(values, dict) and values.get("label_sep") is not None and not values.get("label"):
            labels = _comma_list(values.get("labels"))
            if isinstance(labels, list) and len(labels) == 1:
                return {**values, "label": labels[0], "labels": None}
        return values

    @model_validator(mode="after")
    def _monitor_fits_task(self) -> Config:
        if self.task == "segment" and self.sampler == "weighted":
            raise ValueError("sampler=weighted draws every class equally often; a segmenter has no classes to draw")
        segment = ("val_loss", "val_dice", "val_iou")
        if (self.task == "segment") != (self.monitor in segment) and self.monitor != "val_loss":
            allowed = segment if self.task == "segment" else tuple(m for m in MONITORS if m not in segment[1:])
            raise ValueError(
                f"monitor={self.monitor} does not fit task={self.task}; choose one of {', '.join(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _mixing_needs_soft_targets(self) -> Config:
        if (self.mixup or self.cutmix) and (self.task != "classify" or self.loss != "cross-entropy"):
            raise ValueError(
                f"mixup/cutmix train on mixed (soft) labels, which task=classify with loss=cross-entropy takes; "
                f"task={self.task} loss={self.loss} does not: set mixup=0 cutmix=0"
            )
        return self

    @model_validator(mode="after")
    def _unfreeze_needs_gradual(self) -> Config:
        if self.unfreeze == "stages" and self.strategy != "gradual":
            raise ValueError(
                f"unfreeze=stages unfreezes the backbone stage by stage after the head's epochs, which is "
                f"strategy=gradual; strategy={self.strategy} has no such phase: add strategy=gradual"
            )
        return self

    @model_validator(mode="after")
    def _fractions_leave_training(self) -> Config:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} leaves too little "
                "for training; keep their sum below 0.9"
            )
        if self.label and self.labels:
            raise ValueError("give either label= (one column) or labels= (several 0/1 columns), not both")
        if self.labels and self.label_sep is not None:
            raise ValueError(
                "label_sep= splits one column of delimited labels (label=COLUMN label_sep='|'); labels=A,B names 0/1 "
                "columns, which need no separator: give one or the other"
            )
        return self


# --- sections: what a component takes instead of the whole Config ---------------------------------------

#: The keys of each section, in the order people read them.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "data": (
        "data", "reader", "path", "outside_paths", "label", "label_from", "label_pattern", "labels", "label_sep",
        "no_finding", "classes", "split", "group", "mask_column", "masks", "domain", "domains", "harmonise",
        "label_map", "keep_classes", "val_fraction", "test_fraction", "split_file", "image_size", "channels",
        "resize", "interpolation", "cache_dir", "workers", "window", "frame", "mask", "mask_margin", "mask_missing",
        "mask_source", "limit", "train_limit",
    ),
    "model": ("backbone", "pretrained", "weights", "head", "dropout", "arch", "postprocess"),
    "optimisation": (
        "strategy", "freeze_epochs", "unfreeze", "freeze", "lr_decay", "backbone_lr_scale", "batch_size", "lr",
        "optimizer", "momentum", "nesterov", "weight_decay", "label_smoothing", "loss", "focal_gamma", "threshold",
        "class_weights", "sampler",
    ),
    "schedule": ("epochs", "scheduler", "warmup_epochs", "step_epochs", "step_gamma", "monitor", "keep", "patience"),
    "augmentation": (
        "augment", "hflip", "vflip", "rotate", "crop_scale", "brightness", "contrast", "augment_strength", "mixup",
        "cutmix",
    ),
    "run": (
        "task", "name", "seed", "precision", "devices", "num_nodes", "distributed", "accelerator", "threads",
        "channels_last", "cache_features", "tta", "report", "read_test", "guard", "shortcut_check", "logger",
        "tracking_uri", "tracking_experiment",
    ),
}  # fmt: skip


def _check_partition() -> None:
    listed = [key for keys in SECTION_KEYS.values() for key in keys]
    missing, twice = set(Config.model_fields) - set(listed), {k for k in listed if listed.count(k) > 1}
    unknown = set(listed) - set(Config.model_fields)
    if missing or twice or unknown:  # a new key of Config must be given its section here
        raise RuntimeError(f"configuration sections: missing {missing}, listed twice {twice}, unknown {unknown}")


def _section_model(name: str, keys: tuple[str, ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {key: (Config.model_fields[key].annotation, Config.model_fields[key]) for key in keys}
    return create_model(name, __config__=ConfigDict(frozen=True), **fields)


_check_partition()
DataSettings = _section_model("DataSettings", SECTION_KEYS["data"])
ModelSettings = _section_model("ModelSettings", SECTION_KEYS["model"])
Optimisation = _section_model("Optimisation", SECTION_KEYS["optimisation"])
Schedule = _section_model("Schedule", SECTION_KEYS["schedule"])
Augmentation = _section_model("Augmentation", SECTION_KEYS["augmentation"])
RunSettings = _section_model("RunSettings", SECTION_KEYS["run"])


class Sections(NamedTuple):
    """A configuration's sections (`Config.sections`)."""

    data: Any
    model: Any
    optimisation: Any
    schedule: Any
    augmentation: Any
    run: Any


_MODELS = (DataSettings, ModelSettings, Optimisation, Schedule, Augmentation, RunSettings)


def split_config(config: Config) -> Sections:
    """`config` as its sections (values already validated by `Config`, so they are taken as they are)."""
    values = {
        name: model.model_construct(**{key: getattr(config, key) for key in keys})
        for model, (name, keys) in zip(_MODELS, SECTION_KEYS.items(), strict=True)
    }
    return Sections(**values)
