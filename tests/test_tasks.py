"""common.tasks: the one registry from a task name to its config, trainers, presets and what the
verdicts read of its records."""

import pytest

from common import tasks
from common.backends import BACKENDS, module
from common.records import error_record, run_record


@pytest.mark.parametrize("task", tasks.TASKS.values(), ids=tasks.TASKS)
def test_every_task_is_whole(task):
    assert task.config().task == task.name  # its config says which task it is
    for backend in BACKENDS:  # a trainer on each backend, found by the registry's module name
        assert hasattr(module(backend, task.trainer_module), "Trainer")
    for preset in (task.quick, task.paper):
        assert set(preset) <= {f for f in task.config.__dataclass_fields__}
    assert task.accuracy_key in task.final and task.accuracy_at[1] == task.accuracy_key


def test_a_record_is_read_by_its_task():
    adder, text = tasks.TASKS["adder"], tasks.TASKS["sentiment"]
    old = {"status": "ok", "final": {"exact_acc": 0.5}, "timing": {"solve_step": None}}  # no task field
    assert tasks.of(old) is adder and adder.accuracy(old) == 0.5 and adder.learning_step(old, 300) == 300
    record = {"task": "sentiment", "status": "ok", "final": {"test_acc": 0.7},
              "best": {"test_acc": 0.85, "step_within_1_point": 150}}
    assert tasks.of(record) is text and text.accuracy(record) == 0.85 and text.learning_step(record, 300) == 150
    assert text.accuracy({**record, "status": "diverged"}) == 0.0  # a non-finite loss is no answer


def test_records_carry_exactly_their_tasks_own_fields():
    text = tasks.SENTIMENT.config()
    assert error_record("jax", text, "boom")["best"] is None  # the field is there, empty
    assert "best" not in error_record("jax", tasks.ADDER.config(), "boom")
    outcome = {"status": "ok", "diverged_step": None, "curve": [], "timing": None}
    with pytest.raises(TypeError, match="adder records have no field 'best'"):
        run_record("jax", tasks.ADDER.config(), {**outcome, "best": None}, "t", {})
