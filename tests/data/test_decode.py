"""medtune.data.decode: table rows decoded at once (image files and .npz rows), failures returned per row."""

from __future__ import annotations

import numpy as np

from medtune.data.decode import Entry, decode_entries, read_entry
from medtune.errors import ImageReadError
from tests.conftest import shared_path


def test_archive_rows_and_files_decode_in_one_pass_and_failures_stay_per_row(tmp_path):
    archive = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    png = sorted(shared_path("cxr3", "normal").glob("*.png"))[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    entries = [Entry(0, str(archive), "test_images", 3), Entry(1, str(png)), Entry(2, str(broken)),
               Entry(3, str(archive), "test_images", 10**6)]  # fmt: skip
    decoded = {entry.position: image for entry, image in decode_entries(entries)}
    assert decoded[0].shape == (28, 28)
    np.testing.assert_array_equal(decoded[0], np.load(archive)["test_images"][3])
    assert decoded[1].ndim == 2 and isinstance(decoded[2], ImageReadError) and isinstance(decoded[3], ImageReadError)
    np.testing.assert_array_equal(read_entry(archive, "test_images", 3), decoded[0])
