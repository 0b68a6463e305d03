"""A task group, as an experiment file writes it: each task with its role (main or aux), its
training length range and its weight. The one type the config, the mixture, the trainer and the
head analysis all use; here, below the config, so that the config owns no data code."""

from __future__ import annotations

from dataclasses import dataclass

from lgtransfer.errors import UsageError
from lgtransfer.tasks import get_task


@dataclass
class GroupTask:
    """One task of a group, as an experiment file writes it and the mixture draws it.

    `role` and `max_length` are required: a group is explicit about which task is the main one
    and how long each trains. `min_length` defaults to the task's own shortest length.
    """

    task: str
    role: str  # "main" | "aux"
    max_length: int  # longest training length
    min_length: int | None = None  # shortest training length; None: the task's shortest
    weight: float = 1.0

    @property
    def shortest(self) -> int:
        """The shortest training length (the one rule for the default)."""
        return self.min_length if self.min_length is not None else get_task(self.task).min_length

    def validate(self) -> None:
        task = get_task(self.task)
        if self.role not in ("main", "aux"):
            raise UsageError(f"task {self.task!r}: role must be 'main' or 'aux', got {self.role!r}")
        if self.shortest > self.max_length:
            raise UsageError(f"task {self.task!r}: min_length {self.shortest} > "
                             f"max_length {self.max_length}")
        task.check_length(self.shortest)
        task.check_length(self.max_length)
        if not self.weight > 0:
            raise UsageError(f"task {self.task!r}: weight must be positive, got {self.weight}")


class GroupRoles:
    """`main` and `aux` of anything holding a task `group` (an experiment's config, a trained
    run read back by the head analysis)."""

    group: list[GroupTask]

    @property
    def main(self) -> GroupTask:
        """The main task (a group has exactly one; `ExperimentConfig.validate` checks)."""
        return next(t for t in self.group if t.role == "main")

    @property
    def aux(self) -> list[GroupTask]:
        """The auxiliary tasks, in the group's order."""
        return [t for t in self.group if t.role == "aux"]
