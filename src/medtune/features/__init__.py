"""Features once, used many ways: pooled backbone features cached beside the image store, and the tools on them.

- `embed`: pooled features of every image from a run or a backbone (``medtune embed``).
- `probe`: logistic regression, kNN and SVM baselines on frozen features, as run directories (``medtune probe``).
- `similar`: a FAISS index of features and the nearest images of a query (``medtune index``, ``medtune similar``).
- `audit`: duplicates (leakage across splits first), likely label errors and outliers (``medtune data audit``).
- `audit_match`: near duplicates grown by rotation, flips, crops or zoom, found by keypoint matching.
- `shortcuts`: can the images tell their source apart (``medtune data shortcuts``)?
"""
