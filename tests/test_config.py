import dataclasses
import math

import pytest

from common.config import Config, ConfigError


@pytest.mark.parametrize("changes, named", [
    ({"digits": 0}, "digits=0"),
    ({"digits": -4}, "digits=-4"),
    ({"base": 1}, "base=1"),
    ({"base": 37, "data": "uniform"}, "base=37"),
    ({"cell": "transformer"}, "cell='transformer'"),
    ({"layers": 0}, "layers=0"),
    ({"lr": 0.0}, "lr=0.0"),
    ({"lr": -1e-3}, "lr=-0.001"),
    ({"lr": math.nan}, "lr=nan"),
    ({"lr": math.inf}, "lr=inf"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"cell": "lstm", "activation": "relu"}, "activation='relu'"),
    ({"base": 2}, "base=2"),  # handout data is decimal only
    ({"schedule": "multistep", "milestones": ()}, "milestones=[]"),
    ({"milestones": (200, 100)}, "milestones=[200, 100]"),
    ({"digits": 2.5}, "digits=2.5"),
    ({"carry_state": "yes"}, "carry_state='yes'"),
    ({"h0": "ones"}, "h0='ones'"),
])
def test_bad_values_name_the_field_and_value(changes, named):
    with pytest.raises(ConfigError, match=f"^{named}".replace("[", r"\[").replace("]", r"\]")):
        Config(**changes)


def test_defaults_are_the_handout():
    cfg = Config()
    assert (cfg.data, cfg.digits, cfg.positions, cfg.cell, cfg.layers, cfg.hidden, cfg.embed) == \
        ("handout", 9, 10, "rnn", 2, 64, 32)
    assert (cfg.lr, cfg.batch_size, cfg.steps, cfg.eval_every, cfg.eval_size) == (1e-3, 200, 3000, 50, 2000)


def test_json_round_trip():
    cfg = Config(cell="gru", layers=3, digits=100, data="uniform", base=16, schedule="multistep",
                 milestones=(10, 20), carry_state=True, h0="xavier", dtype="float64")
    assert Config.from_json(cfg.to_json()) == cfg


def test_from_dict_rejects_unknown_and_bad_json():
    with pytest.raises(ConfigError, match="unknown config field 'colour'"):
        Config.from_dict({"colour": "red"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json("{digits: 3")
    with pytest.raises(ConfigError, match="JSON object"):
        Config.from_json("[1, 2]")


def test_every_workload_shares_one_set_of_run_fields_and_rules():
    from common.config import RunConfig
    from common.sentiment.config import TextConfig

    shared = {f.name for f in dataclasses.fields(RunConfig)}
    for cls in (Config, TextConfig):
        assert shared <= {f.name for f in dataclasses.fields(cls)}
        with pytest.raises(ConfigError, match=r"^layers=0: must be in \[1, 32\]$"):
            cls(layers=0)
        with pytest.raises(ConfigError, match="^control='ulp': nudges the shared initial weights"):
            cls(control="ulp", init="native")
        assert cls.from_json(cls(lr=0.5).to_json()) == cls(lr=0.5)
    # Each workload's own cells and defaults: the adder's ablation has no recurrent layer.
    assert Config(cell="none").cell == "none"
    with pytest.raises(ConfigError, match="^cell='none': must be one of rnn, lstm, gru$"):
        TextConfig(cell="none")
    assert (Config().task, Config().hidden, TextConfig().task, TextConfig().hidden) == ("adder", 64, "sentiment", 256)
