"""lm-eval integration: ``task.py`` (the task class) and one YAML per suite task, ``longctx_<name>``.

Pass this folder as lm-eval's ``--include_path``; groups ``longctx_ruler``, ``longctx_mrcr`` and
``longctx_decay`` run a whole family. ``INCLUDE_PATH`` is this folder, for the Python API
(``lm_eval.tasks.TaskManager(include_path=INCLUDE_PATH, metadata={...})``). See ``task.py``.
"""
from pathlib import Path

INCLUDE_PATH = Path(__file__).parent
