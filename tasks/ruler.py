"""Placeholder: filled in by the task-generator work."""
from tasks.task import Task

RULER_TASKS: dict[str, Task] = {}
