"""Near duplicates that features alone miss: copies grown from one original by rotation, flips, crops or zoom (as
tile sets such as LC25000 were made) keep their features only roughly, no closer than two different tiles of one
tissue. Each image's nearest neighbours by features are the candidates; OpenCV's ORB keypoints, matched and fitted
with a rotation-scale-translation model by RANSAC (tried on the mirrored image too, for flips), confirm a pair
when many keypoints agree on one geometry over a real part of the image (not a shared marker or label).
Different images of one tissue agree on a handful by chance; copies of one original on dozens (on LC25000 lung
tiles: 90% of candidate pairs at 7 or fewer, confirmed copies at 20-180).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from medtune.data.decode import decode_entries, table_entries
from medtune.data.images import to_uint8
from medtune.data.table import Table
from medtune.errors import ImageReadError

#: Keypoints that must agree on one geometry for a pair to count as one original.
MATCH_INLIERS = 20
#: Share of the image the agreeing keypoints must span (convex hull): a burned-in marker or a corner label that two
#: different X-rays share agrees on a few percent of the film at most.
MIN_SPREAD = 0.03
#: Longest side the images are matched at.
MATCH_SIZE = 256
#: Images smaller than this (e.g. MedMNIST's 28 px) carry too few keypoints to match.
MIN_SIDE = 64
#: Candidate neighbours of each image by features.
CANDIDATES = 10


def candidate_pairs(features: np.ndarray, k: int = CANDIDATES) -> np.ndarray:
    """``(P, 2)`` pairs ``i < j``: each image with its `k` nearest images by cosine similarity (FAISS)."""
    from medtune.features.similar import create_index

    index, _ = create_index(features)
    _, found = index.search(features, min(k + 1, len(features)))
    rows = np.repeat(np.arange(len(features)), found.shape[1])
    pairs = np.stack([rows, found.reshape(-1)], axis=1)
    pairs = pairs[(pairs[:, 1] >= 0) & (pairs[:, 0] != pairs[:, 1])]
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _grey(image: np.ndarray) -> np.ndarray | None:
    import cv2

    array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    if min(array.shape[:2]) < MIN_SIDE:
        return None
    array = to_uint8(array)
    if array.ndim == 3:
        array = cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2GRAY)
    scale = MATCH_SIZE / max(array.shape)
    if scale < 1:
        array = cv2.resize(array, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(array)


def _keypoints(table: Table, rows: np.ndarray, window: str, frame: int | str | None) -> Iterator[tuple[int, tuple]]:
    """ORB keypoints and descriptors of each image, and of its mirror image, with the image's area."""
    import cv2

    orb = cv2.ORB_create(nfeatures=500)
    part = table.with_frame(table.frame.iloc[rows].reset_index(drop=True))
    for entry, image in decode_entries(table_entries(part), window, frame):
        grey = None if isinstance(image, ImageReadError) else _grey(np.asarray(image))
        if grey is None:
            continue
        found = []
        for picture in (grey, np.ascontiguousarray(grey[:, ::-1])):
            points, descriptors = orb.detectAndCompute(picture, None)
            found.append((np.float32([p.pt for p in points]), descriptors))
        yield int(rows[entry.position]), (*found, grey.shape[0] * grey.shape[1])


def _inliers(matcher: object, first: tuple, second: tuple, area: int) -> int:
    """Keypoints that agree on one rotation-scale-translation, 0 when they span less than `MIN_SPREAD` of the
    first image's `area`."""
    import cv2

    (points_a, desc_a), (points_b, desc_b) = first, second
    if desc_a is None or desc_b is None or len(desc_a) < 4 or len(desc_b) < 4:
        return 0
    matches = matcher.match(desc_a, desc_b)
    if len(matches) < 4:
        return 0
    source = points_a[[m.queryIdx for m in matches]]
    target = points_b[[m.trainIdx for m in matches]]
    _, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if inliers is None or inliers.sum() < 3:
        return 0
    agreeing = source[inliers.ravel() == 1]
    spread = cv2.contourArea(cv2.convexHull(agreeing)) / max(area, 1)
    return int(inliers.sum()) if spread >= MIN_SPREAD else 0


def matched_pairs(
    table: Table, pairs: np.ndarray, window: str = "auto", frame: int | str | None = None
) -> dict[tuple[int, int], int]:
    """The candidate `pairs` whose keypoints agree (at least `MATCH_INLIERS`, spanning `MIN_SPREAD` of the image),
    with the number that agree; images smaller than `MIN_SIDE` or unreadable are left out."""
    import cv2

    if not len(pairs):
        return {}
    cv2.setRNGSeed(0)  # RANSAC draws: the same pairs on every run
    keypoints = dict(_keypoints(table, np.unique(pairs), window, frame))
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    confirmed = {}
    for i, j in pairs:
        if i in keypoints and j in keypoints:
            plain, mirrored, _ = keypoints[j]
            mine, _, area = keypoints[i]
            count = max(_inliers(matcher, mine, plain, area), _inliers(matcher, mine, mirrored, area))
            if count >= MATCH_INLIERS:
                confirmed[(int(i), int(j))] = count
    return confirmed
