"""Placeholder: filled in by the task-generator work."""
from tasks.task import Task

MRCR_TASKS: dict[str, Task] = {}
