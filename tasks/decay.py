"""Placeholder: filled in by the task-generator work."""
from tasks.task import Task

DECAY_TASKS: dict[str, Task] = {}
