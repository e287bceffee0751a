"""medtune.runs.trained through its Python API: a run's network whatever its task, its task read without loading a
network, and refusals that name the other kind of run."""

from __future__ import annotations

import pytest
import torch

from medtune.errors import DataError
from medtune.runs.trained import TrainedModel, TrainedSegmenter, load_network, load_segmenter, load_trained, source_task


def test_a_source_s_task_and_network_follow_from_the_run(tiny_run, tiny_segment_run, tiny_findings_run):
    assert source_task(tiny_run).name == "classify" and source_task(tiny_findings_run).name == "multilabel"
    assert source_task(tiny_segment_run).name == "segment"
    assert source_task(tiny_run / "checkpoints" / "best.ckpt").name == "classify"
    classifier, segmenter = load_network(tiny_run), load_network(tiny_segment_run)
    assert isinstance(classifier, TrainedModel) and classifier.classes == ("normal", "pneumonia")
    assert isinstance(segmenter, TrainedSegmenter) and segmenter.classes == () and segmenter.in_chans == 1
    with torch.inference_mode():
        out = segmenter.inference_model(tta=False)(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))
    assert out.shape == (1, 64, 64)


def test_each_loader_refuses_the_other_kind_with_the_command_to_use(tiny_run, tiny_segment_run, tmp_path):
    with pytest.raises(
        DataError, match=r"segmentation run \(task=segment\), not a classifier: use `medtune segment predict"
    ):
        load_trained(tiny_segment_run)
    with pytest.raises(DataError, match="classification run, not a segmenter"):
        load_segmenter(tiny_run)
    with pytest.raises(DataError, match="is not a medtune run"):
        source_task(tmp_path)
