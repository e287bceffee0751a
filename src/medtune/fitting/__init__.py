"""Fitting on Lightning: the only package (with the queue's worker) that imports Lightning.

- `train`: data to a trained, evaluated run directory (``medtune train``, ``medtune segment train``).
- `module`: the LightningModule of every task (normalisation, transfer strategy; the task's loss and epoch metrics).
- `callbacks`: ``history.csv``, atomic checkpoints, shared cores.
- `keep`: which epoch's weights a classifier keeps (the best only when it is more than luck).
- `tracking`: ``logger=tensorboard|mlflow`` on Lightning's loggers (configuration, epochs, kept epoch, test metrics,
  report).
"""
