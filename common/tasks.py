"""The workloads by task name: the one place that maps a task to what the rest of the code needs
of it. A record's `task`, a sweep's `task`, the command line's `--task` and the serve protocol's
request all name an entry here; compare/ asks the entry instead of branching on the name.

A third workload adds its config (a `common.config.RunConfig`), its loop part (a
`common.training.Workload`), its command-line run (`command`), a trainer module per backend, and
one `Task` line below; its findings, equivalence checks, report section and bench cases go beside
the others' in compare/ (README, "Adding a workload").
"""

from __future__ import annotations

import dataclasses
from typing import Any

from collections.abc import Callable

from common import memory
from common.config import Config, RunConfig
from common.sentiment.config import TextConfig


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    about: str                    # one line, for --help
    config: type[RunConfig]
    trainer_module: str           # the backends' module with its Trainer (common.backends.module)
    # Its run on the command line and in a warm worker (common/cli.py): a framework-free module
    # with HELP (its own fields' flag help), run(backend, cfg, console, seeds, requested_at,
    # checkpointing) -> records, and summarise(record) -> str.
    command: str
    # Whose defaults the config's are (a report section names them).
    defaults_from: str
    # Refuses, before any run starts, a config whose size cannot fit (common.memory.check's
    # signature); None where the size depends on data that only its worker loads.
    size_check: Callable[..., object] | None
    # Sweep presets: the fields every sweep of the task fixes, on top of the config's defaults.
    quick: dict[str, Any]
    paper: dict[str, Any]
    accuracy_key: str             # the accuracy an eval point carries
    final: tuple[str, ...]        # what a record's `final` keeps of the last eval point
    extra_fields: tuple[str, ...]  # record fields only this task's records have (None in an error's)
    # Where a record holds its accuracy and its learning step (section, key), and their names.
    accuracy_at: tuple[str, str]
    learning_step_at: tuple[str, str]
    measures: tuple[str, str]

    def accuracy(self, record: dict[str, Any]) -> float:
        """A run's accuracy (the adder's final exact match, sentiment's best test accuracy). A
        diverged run scores 0: it ends with a non-finite loss, not with an answer."""
        if record["status"] == "diverged":
            return 0.0
        section, key = self.accuracy_at
        return (record.get(section) or {}).get(key) or 0.0

    def learning_step(self, record: dict[str, Any], cap: int) -> float:
        """How many steps it took (the adder's to 100 % exact, sentiment's to within 1 point of
        its best test accuracy); the step cap where it never got there."""
        section, key = self.learning_step_at
        return (record.get(section) or {}).get(key) or cap


ADDER = Task(
    "adder", "learn to add digit by digit", Config, "adder", command="common.run",
    defaults_from="handout", size_check=memory.check,
    # quick: minutes on a 2-core CPU (a higher lr, fewer steps); paper: the reports' settings.
    quick={"steps": 300, "eval_every": 20, "lr": 1e-2}, paper={},
    accuracy_key="exact_acc", final=("step", "loss", "exact_acc", "digit_acc"), extra_fields=(),
    accuracy_at=("final", "exact_acc"), learning_step_at=("timing", "solve_step"),
    measures=("final exact match", "steps to 100 %"))
SENTIMENT = Task(
    "sentiment", "classify texts over pretrained word vectors", TextConfig, "sentiment",
    command="common.sentiment.run", defaults_from="lab's", size_check=None,
    # quick: the offline default (tweets); paper: the lab's data, IMDB with GloVe 100-d (give their
    # paths: --set corpus_path=… --set vectors=…glove.6B.zip), 10 epochs of the 25,000 training
    # reviews at batch 64 (3,900 steps), which the lab's curves plateau well within.
    quick={"steps": 300, "eval_every": 50},
    paper={"corpus": "imdb", "vectors_member": "glove.6B.100d.txt", "steps": 3900, "eval_every": 300},
    accuracy_key="test_acc", final=("step", "loss", "test_acc", "test_loss"), extra_fields=("best",),
    accuracy_at=("best", "test_acc"), learning_step_at=("best", "step_within_1_point"),
    measures=("best test accuracy", "steps to within 1 point of the best"))
TASKS = {task.name: task for task in (ADDER, SENTIMENT)}
DEFAULT = ADDER.name  # records, requests and command lines from before tasks existed are the adder's


def of(record: dict[str, Any]) -> Task:
    """The task of a record (or a serve request): its `task` field, the adder's where it has none."""
    return TASKS[record.get("task", DEFAULT)]
