"""The Python API: every command of the command line as a function with a real signature, a docstring and a typed
result, re-exported by the front door (``import medtune``).

- `using`: a trained run: evaluate, predict, explain, report, export, serve.
- `making`: runs: train, ensemble, crossdomain, sweep, tune.
- `looking`: data and features: summary, audit, embed, probe, index, similar.
- `segment`: segmenters, as the namespace ``medtune.segment`` (train, evaluate, predict).
- `predictor`: ``medtune.load``: a run or exported model opened once, answering for paths, numpy arrays and PIL
  images.
- `outcomes`: what they return: `Predictions`, `EvaluationResult`, `TrainingResult` (``.to_frame()``, a table in
  Jupyter).

Nothing here imports torch when imported; each function imports what it uses when called.
"""
