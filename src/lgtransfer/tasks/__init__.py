"""Every task of the paper, registered by name (importing this package registers them all), and
the public API for your own: subclass `Task` and decorate it with `register`, or write one
example-making function and decorate it with `simple_task` (docs/tasks.md, "Your own tasks")."""

from lgtransfer.tasks import arithmetic, mazes, strings  # noqa: F401  (registration)
from lgtransfer.tasks.base import TASKS, Example, Task, TaskBatch, get_task, register
from lgtransfer.tasks.simple import SimpleTask, simple_task
from lgtransfer.tasks.user import load_entry_points  # noqa: F401  (entry points on first use)

__all__ = ["TASKS", "Example", "SimpleTask", "Task", "TaskBatch", "get_task", "register",
           "simple_task"]
