"""Every task of the paper, registered by name. Importing this package registers them all."""

from lgtransfer.tasks import arithmetic, mazes, strings  # noqa: F401  (registration)
from lgtransfer.tasks.base import TASKS, Example, Task, TaskBatch, get_task, register

__all__ = ["TASKS", "Example", "Task", "TaskBatch", "get_task", "register"]
