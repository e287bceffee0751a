"""The commands' recipes: training on Lightning (`train`, `module`, `callbacks`) and evaluation, prediction and
explanation with the bare inference network (`evaluate`, `multilabel`, `predict`, `explain`, `inference`).

Only the training modules import Lightning (a checked contract in ``pyproject.toml``).
"""
