"""The typed configuration: one flat, frozen object with the keys people type (``label=``, ``backbone=``).

A type sits beside its default. Later features add their keys here; the CLI, YAML files and the Python API
all end in this one object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _comma_list(value: object) -> object:
    """Accept ``a,b,c`` as well as a YAML list for list-valued keys."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Config(BaseModel):
    """Every setting medtune knows, with its default. Build one with `medtune.config.load_config`."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # --- data: where it is and how to read it -------------------------------------------------------------
    data: str | None = Field(None, description="folder, CSV/TSV manifest or .npz file")
    reader: str = Field("auto", description="reader name (folder, table, npz...) or auto to detect")
    path: str | None = Field(None, description="CSV column with image paths (auto: path, image, file, filename...)")
    label: str | None = Field(None, description="CSV column with the label (auto: label, class, target...)")
    labels: list[str] | None = Field(None, description="CSV 0/1 columns, one per class (multi-label)")
    label_sep: str | None = Field(None, description="separator of several labels in one cell, e.g. '|'")
    no_finding: str = Field("No Finding", description="label value that means no class (multi-label)")
    classes: list[str] | None = Field(None, description="class names in order; npz class names")
    split: str | None = Field(None, description="CSV column with train/val/test")
    group: str | None = Field(None, description="CSV column with the patient (group) id")
    mask: str | None = Field(None, description="CSV column with mask paths")
    domain: str | None = Field(None, description="CSV column with the source domain (hospital)")
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
    # --- network -----------------------------------------------------------------------------------------
    backbone: str = Field("tf_efficientnet_lite0", description="timm model name")
    pretrained: bool = Field(True, description="start from ImageNet weights")
    weights: str | None = Field(None, description="local weights file for the backbone")

    _split_lists = field_validator("labels", "classes", mode="before")(_comma_list)

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_int(cls, value: object) -> object:
        return int(value) if isinstance(value, str) and value.isdigit() else value

    @model_validator(mode="after")
    def _fractions_leave_training(self) -> Config:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} leaves too little "
                "for training; keep their sum below 0.9"
            )
        if self.label and self.labels:
            raise ValueError("give either label= (one column) or labels= (several 0/1 columns), not both")
        return self
