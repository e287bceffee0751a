"""medtune.load: a run or an exported model opened once, answering for files, folders, numpy arrays and PIL images;
images in memory take exactly the preprocessing files take (the same probabilities to 1e-5), and inputs that are no
images are refused naming the value, what was expected and the fix."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import medtune
from medtune.data import demo_data
from medtune.errors import DataError
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return medtune.load(tiny_run, engine="torch")


@pytest.fixture(scope="module")
def files():
    """Three NIH X-rays (256 px) and a COVID image of odd size: resized to the run's 32 px on the way in."""
    return [
        *sorted(shared_path("cxr3", "normal").glob("*.png"))[:3],
        sorted(shared_path("cxr3", "covid").glob("*.png"))[0],
    ]


def test_arrays_and_pil_images_get_the_probabilities_of_their_png_files(predictor, files):
    from_files = predictor(files)
    assert [p.file for p in from_files] == [str(f) for f in files] and not from_files.errors
    pixels = [np.asarray(Image.open(f)) for f in files]
    for given in (pixels, [Image.open(f) for f in files], [p.astype(np.float32) / 255 for p in pixels],
                  [np.repeat(p[..., None], 3, axis=-1) for p in pixels]):  # fmt: skip
        np.testing.assert_allclose(predictor(given).probabilities, from_files.probabilities, atol=1e-5)
    assert [p.file for p in predictor(pixels)] == ["array[0]", "array[1]", "array[2]", "array[3]"]
    assert predictor(Image.open(files[0]))[0].file == str(files[0])  # a PIL image knows its file


def test_a_batch_is_its_images_one_by_one(predictor):
    with np.load(demo_data()) as demo:
        batch = demo["test_images"][:5]
    together = predictor(batch)
    assert len(together) == 5 and predictor.classes == ("normal", "pneumonia")
    one_by_one = np.concatenate([predictor(image).probabilities for image in batch])
    np.testing.assert_allclose(together.probabilities, one_by_one, atol=1e-6)
    np.testing.assert_allclose(predictor(batch[..., None]).probabilities, one_by_one, atol=1e-6)  # (N, H, W, 1)


def test_an_exported_model_answers_arrays_as_its_run_does(tiny_run, predictor, files, tmp_path):
    exported = medtune.export(tiny_run, out=tmp_path / "model.onnx")
    onnx = medtune.load(exported.model)
    assert "onnxruntime" in repr(onnx) and "PyTorch" in repr(predictor)
    pixels = [np.asarray(Image.open(f)) for f in files]
    np.testing.assert_allclose(onnx(pixels).probabilities, predictor(pixels).probabilities, atol=1e-4)


@pytest.mark.parametrize(
    ("array", "said"),
    [
        (np.zeros((2, 3, 4, 5, 6), np.uint8), ["shape (2, 3, 4, 5, 6)", "(N, H, W, C)"]),
        (np.zeros((8, 8), bool), ["dtype bool", ".astype(np.uint8)"]),
        (np.array([["a", "b"]]), ["dtype <U1", "expected pixels"]),
        (np.zeros((8, 8, 4), np.uint8), ["shape (8, 8, 4)", "image[..., :3]"]),
        (np.zeros((0, 8), np.uint8), ["shape (0, 8)", "H, W >= 1"]),
    ],
)
def test_an_array_that_is_no_image_is_refused_naming_its_shape_and_the_fix(predictor, array, said):
    with pytest.raises(DataError) as refused:
        predictor(array)
    assert all(words in str(refused.value) for words in said), str(refused.value)


def test_a_corrupt_file_gets_its_error_and_other_inputs_are_refused_with_what_to_give(predictor, files, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    answers = predictor([files[0], broken])
    assert answers[0].label in predictor.classes and answers[1].label is None and "broken.png" in answers[1].file
    assert answers[1].error and list(answers.errors) == [str(broken)]
    with pytest.raises(DataError, match="mixes paths and images"):
        predictor([files[0], np.asarray(Image.open(files[0]))])
    with pytest.raises(DataError, match="cannot predict a dict; give image paths"):
        predictor({"image": files[0]})


def test_a_source_that_is_neither_a_run_nor_a_model_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"labels\.csv is neither a run directory nor an exported model"):
        medtune.load(shared_path("cxr3", "labels.csv"))
    with pytest.raises(DataError, match="is not a medtune run"):
        medtune.load(tmp_path)
    with pytest.raises(DataError, match="nope does not exist; give a run directory"):
        medtune.load(tmp_path / "nope")
