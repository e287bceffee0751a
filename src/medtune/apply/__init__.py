"""Using a trained network: metrics, predictions and explanations with the bare network (no Lightning).

- `scoring`: probabilities for rows of an image store from a run's PyTorch network or its exported ONNX model.
- `evaluate`: a run's metrics on its test split or on other labelled data (``medtune evaluate``).
- `predict`: labels and probabilities for new images (``medtune predict``).
- `guard`: does an image belong here? Distances to the training images, calibrated on validation.
- `shift`: what the guard says about evaluated data (share flagged, metrics accepted / flagged, AUROC).
- `calibrate`: split conformal prediction sets fitted on the validation split (``medtune calibrate``).
- `prevalence`: EM prior estimation, bias-corrected temperature scaling and the prevalence / threshold calibration.
- `recalibrate`: a run's prevalence or thresholds re-fitted to other data (``medtune calibrate RUN DATA``), used by
  predict and compared before and after by evaluate.
- `explain`: class activation maps of a run for new images (``medtune explain``, the function ``medtune.explain``).
- `segment_eval`: Dice, IoU and HD95 of a segmenter on its test split or other data.
- `segment_predict`: a mask file per input image from a segmentation run.
"""
