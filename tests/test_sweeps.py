"""compare.sweeps: the sweep table refuses, when it is built, a sweep the report could not judge."""

import pytest

from compare import sweeps
from compare.sweeps import SWEEPS, Sweep


def test_the_table_holds_every_sweep_by_name():
    assert sweeps.table(list(SWEEPS.values())) == SWEEPS


def test_a_sweep_its_workload_has_no_findings_for_is_refused():
    # It used to run every one of its runs, then fail in the report.
    unjudged = Sweep("text-new", "a sweep no finding reads", {"cell": ("rnn",)}, {"cell": ("rnn",)},
                     task="sentiment")
    with pytest.raises(ValueError, match=r"'text-new': compare/findings/sentiment.py has no CHECKS entry"):
        sweeps.table([*SWEEPS.values(), unjudged])
    adder_name = Sweep("layers", "the adder's sweep name on the text task", {"layers": (1,)}, {"layers": (1,)},
                       task="sentiment")  # an entry of the other workload does not count
    with pytest.raises(ValueError, match=r"'layers': compare/findings/sentiment.py has no CHECKS entry"):
        sweeps.table([adder_name])


def test_a_name_taken_twice_is_refused():
    with pytest.raises(ValueError, match=r"'layers': a second sweep of that name"):
        sweeps.table([SWEEPS["layers"], SWEEPS["layers"]])
