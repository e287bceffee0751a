"""Running notebooks in a real Jupyter kernel for the tests (the example notebook, progress bars in a notebook).

The kernel is this test process's own Python (a kernel spec written for the run, so a ``python3`` kernel
registered elsewhere on the machine is never picked up), with the session's environment: CPU only, the session's
cache, one thread.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

KERNEL = "medtune-tests"


def run_notebook(notebook: Any, cwd: Path, timeout: float = 300) -> Any:
    """Execute every cell of `notebook` (an ``nbformat`` notebook, changed in place and returned) in a fresh
    kernel of this interpreter, in folder `cwd`; a cell that raises fails with nbclient's ``CellExecutionError``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="medtune-kernels-") as specs:
        folder = Path(specs) / KERNEL
        folder.mkdir()
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
        manager = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs]))
        client = NotebookClient(notebook, km=manager, timeout=timeout, resources={"metadata": {"path": str(cwd)}})
        client.execute()
    return notebook


def cell_text(cell: Any) -> str:
    """Everything a code cell showed: its printed and error streams, and its results as text and as HTML."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        for kind in ("text/plain", "text/html"):
            parts.append(output.get("data", {}).get(kind, ""))
    return "\n".join(parts)
