"""compare.sweeps: the sweep table refuses, when it is built, a sweep the report could not judge."""

import hashlib
import json
from pathlib import Path

import pytest

from common.config import ConfigError
from compare import sweeps
from compare.sweeps import SWEEPS, Sweep, expand, related_keys


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


def key_snapshot() -> dict[str, list]:
    """Per sweep x preset x control kind: how many keys its runs and every follow-up of them have
    (seeds 0-2, both backends), and a digest of those keys."""
    imdb = {"corpus_path": "aclImdb_v1.tar.gz", "vectors": "glove.6B.zip"}  # paper text sweeps read files
    out = {}
    for name, sweep in SWEEPS.items():
        for preset in ("quick", "paper"):
            files = imdb if (sweep.task, preset) == ("sentiment", "paper") else {}
            runs = expand(sweep, preset, ["jax", "torch"], 3, files)
            for control in ("reorder", "ulp"):
                keys = set()
                for run in runs:
                    try:
                        keys |= related_keys([run], control)
                    except ConfigError:  # no ulp control for native init
                        keys.add(run.key)
                digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
                out[f"{name}/{preset}/{control}"] = [len(keys), digest]
    return out


def test_run_keys_are_those_every_earlier_results_folder_holds():
    # tests/run_keys.json was made by the code of 5b84ad4 (before the workload redesign): a key
    # that changes makes every results folder rerun that run instead of resuming it.
    expected = json.loads((Path(__file__).parent / "run_keys.json").read_text())
    assert key_snapshot() == expected
