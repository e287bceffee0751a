"""``medtune export``: real runs exported to ONNX, checked, read back, and predicting as the runs do."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from medtune.apply.predict import predict
from medtune.deploy.export import PARITY_TOLERANCE, export
from medtune.runs.exported import load_exported, parity_file
from tests.conftest import medtune, medtune_subprocess, shared_path


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The tiny PneumoniaMNIST run (32 px, 1 channel) exported through the real command line."""
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    result = medtune_subprocess("export", tiny_run, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "largest probability difference" in result.stdout
    return out


def test_graph_takes_store_images_and_carries_its_preprocessing(exported, tiny_run):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    (graph_input,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims[1:] == [32, 32, 1] and isinstance(dims[0], str)  # NHWC at the working size, a dynamic batch
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["medtune.classes"] == ["normal", "pneumonia"]
    assert (meta["medtune.image_size"], meta["medtune.channels"], meta["medtune.in_chans"]) == (32, 1, 1)
    assert meta["medtune.mean"] == [0.5] and meta["medtune.std"] == [0.5]
    assert len(meta["medtune.checkpoint_sha256"]) == 64 and meta["medtune.opset"] == 20
    assert meta["medtune.exporter"] == "torchscript"
    # the TF-style "same" padding is fixed for 32 px: no shape arithmetic left for the int8 quantiser to trip on
    assert not {"Shape", "Ceil"} & {node.op_type for node in model.graph.node}


def test_parity_with_pytorch_is_kept_beside_the_model(exported):
    parity = json.loads(parity_file(exported).read_text())
    assert parity["split"] == "test" and parity["images"] > 10
    assert parity["max_abs_diff"] <= PARITY_TOLERANCE and parity["agreement"] == 1.0


def test_predicting_with_the_model_gives_the_run_s_answers(exported, tiny_run, tmp_path):
    images = shared_path("cxr-fullres")
    onnx_out = medtune("predict", exported, images, "--out", tmp_path / "a.json", "--probs")
    run_out = medtune("predict", tiny_run, images, "--out", tmp_path / "b.json", "--probs")
    assert onnx_out.returncode == 0 and run_out.returncode == 0, onnx_out.stderr + run_out.stderr
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert len(a) == 8 and [r["label"] for r in a] == [r["label"] for r in b]
    diffs = [abs(x["probabilities"][k] - y["probabilities"][k]) for x, y in zip(a, b, strict=True)
             for k in x["probabilities"]]  # fmt: skip
    assert max(diffs) <= PARITY_TOLERANCE


def test_flip_tta_on_the_model_matches_the_run(exported, tiny_run):
    images = [shared_path("cxr3", "normal")]
    onnx_probs = predict(exported, images, tta=True, progress=False).filter(like="prob_").to_numpy()
    run_probs = predict(tiny_run, images, tta=True, progress=False).filter(like="prob_").to_numpy()
    assert np.abs(onnx_probs - run_probs).max() <= PARITY_TOLERANCE


def test_multilabel_model_keeps_its_thresholds(tiny_findings_run, tmp_path):
    result = export(tiny_findings_run, tmp_path / "findings.onnx")
    model = load_exported(result.model)
    assert model.task.name == "multilabel"
    assert model.thresholds is not None and len(model.thresholds) == len(model.classes)
    inputs = [shared_path("cxr-fullres")]
    from_model = predict(result.model, inputs, progress=False)
    from_run = predict(tiny_findings_run, inputs, progress=False)
    assert from_model["labels"].tolist() == from_run["labels"].tolist()


def test_bad_requests_are_refused(tmp_path, tiny_run):
    not_a_run = medtune("export", tmp_path)
    assert not_a_run.returncode == 1 and "is not a medtune run" in not_a_run.stderr
    fmt = medtune("export", tiny_run, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert fmt.returncode == 2 and "'tflite' is not one of 'onnx'" in fmt.stderr
    exporter = medtune("export", tiny_run, "--exporter", "jit", "--out", tmp_path / "m.onnx")
    assert exporter.returncode == 2 and "'jit' is not one of 'torchscript', 'dynamo'" in exporter.stderr
    (tmp_path / "fake.onnx").write_bytes(b"not a graph")
    fake = medtune("predict", tmp_path / "fake.onnx", shared_path("cxr-fullres"), "--out", tmp_path / "x.json")
    assert fake.returncode == 1 and "is not a readable ONNX model" in fake.stderr


def test_evaluating_the_model_gives_the_run_s_metrics(exported, tiny_run, tmp_path):
    data = shared_path("cxr3")
    from_model = medtune("evaluate", exported, data, "--out", tmp_path / "model")
    from_run = medtune("evaluate", tiny_run, data, "--out", tmp_path / "run")
    assert from_model.returncode == 0 and from_run.returncode == 0, from_model.stderr + from_run.stderr
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("model", "run"))
    assert a["n"] == b["n"] and abs(a["macro"]["auc"] - b["macro"]["auc"]) < 1e-4 and a["accuracy"] == b["accuracy"]
    own = medtune("evaluate", exported)
    assert own.returncode == 1 and "give DATA" in own.stderr


def test_a_run_with_an_export_beside_it_predicts_on_onnxruntime(exported, tiny_run, tmp_path):
    import shutil

    from medtune.apply.predict import choose_engine

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert choose_engine(run) == run  # nothing exported yet: PyTorch
    missing = medtune("predict", run, shared_path("cxr-fullres"), "--out", tmp_path / "x.json", "--engine", "onnx")
    assert missing.returncode == 1 and "medtune export" in missing.stderr
    export(run)
    assert choose_engine(run) == run / "export" / "model.onnx" and choose_engine(run, "torch") == run
    (run / "checkpoints" / "best.ckpt").write_bytes((run / "checkpoints" / "last.ckpt").read_bytes() + b"\0")
    assert choose_engine(run) == run  # the checkpoint changed since the export: not that model any more


def test_int8_model_is_judged_on_the_test_split(tiny_run, tmp_path):
    # --force: a 32 px, two-epoch network may lose more than 0.01 AUC on another CPU's kernels; the numbers are kept
    result = medtune("export", tiny_run, "--out", tmp_path / "model.onnx", "--quantize", "int8", "--force")
    assert result.returncode == 0, result.stderr
    assert "(fp32) vs" in result.stdout and (tmp_path / "model.int8.onnx").is_file()
    report = json.loads(parity_file(tmp_path / "model.onnx").read_text())["int8"]
    assert report["images"] > 10 and report["forced"]
    assert (
        0.5 <= report["int8"]["auc"] <= 1
        and abs(report["fp32"]["auc"] - report["auc_drop"] - report["int8"]["auc"]) < 1e-9
    )
    int8 = predict(tmp_path / "model.int8.onnx", [shared_path("cxr-fullres")], progress=False)
    fp32 = predict(tmp_path / "model.onnx", [shared_path("cxr-fullres")], progress=False)
    assert (int8["label"] == fp32["label"]).mean() >= 0.75  # quantised, not identical: most answers stay
    unknown = medtune("export", tiny_run, "--out", tmp_path / "m.onnx", "--quantize", "int4")
    assert unknown.returncode == 2 and "'int4' is not one of 'int8'" in unknown.stderr


def test_three_class_patient_grouped_run_exports_with_parity(tiny_cxr3_run, tmp_path):
    result = export(tiny_cxr3_run, tmp_path / "cxr3.onnx")
    model = load_exported(result.model)
    assert model.classes == ("covid", "normal", "pneumonia") and model.resolved.image_size == 64
    assert result.parity["max_abs_diff"] <= PARITY_TOLERANCE and result.parity["agreement"] == 1.0
    images = [shared_path("cxr3", "covid")]
    assert (
        predict(result.model, images, progress=False)["label"]
        == predict(tiny_cxr3_run, images, progress=False)["label"]
    ).all()


def test_a_graph_that_is_not_the_network_fails_the_parity_check(exported, tmp_path):
    """Parity compares the graph with the network it claims to be: another run's network (same data, size and
    classes, another seed) must be refused with the numbers."""
    from medtune.deploy.export import ExportError, check_parity
    from medtune.runs import Run, load_trained
    from tests.conftest import TINY

    other = tmp_path / "other"
    trained = medtune("train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *TINY, "epochs=1", "seed=7",
                      "report=false", "--out", other)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    with pytest.raises(ExportError, match=r"differs from PyTorch by .* in probability on \d+ test images"):
        check_parity(exported, load_trained(other), Run(other))
