"""Downstream tasks, looked up through the ``trajzoo.tasks`` entry-point group."""
from trajzoo.tasks.base import Task, TaskData

__all__ = ["Task", "TaskData"]
