"""Tasks: what differs between single-label classification, multi-label findings and segmentation, in one
`Task` implementation each; commands ask a run's task instead of branching on its name.

- `base`: the `Task` protocol (network output, loss, epoch metrics, scoring with intervals, decoding
  probabilities into predictions, history columns, report sections, export outputs) and the registry.
- `classify`: one label per image, a softmax over classes.
- `multilabel`: any number of findings per image, a sigmoid per finding and a threshold each.
- `ordinal`: grades in order (``task=ordinal``): CORN outputs, the median grade, kappa and grade error.
- `segment`: a mask per image, a sigmoid per pixel.

>>> from medtune.tasks import get_task
>>> get_task("multilabel").activation
'sigmoid'
"""

from __future__ import annotations

from medtune.tasks import classify, multilabel, ordinal, segment  # noqa: F401  (registration)
from medtune.tasks.base import TASKS, Task, get_task, task_for, task_of_meta

__all__ = ["TASKS", "Task", "get_task", "task_for", "task_of_meta"]
