"""The trainer core (jax_impl/core.py, torch_impl/core.py): what the trainers' own tests do not
show, the one JAX program cache both workloads share."""

from common.config import Config


def test_the_program_cache_keeps_the_newest_configs():
    from jax_impl.core import Programs

    programs = Programs(keep=2)
    a = programs.of("a", {"kind": 1})
    assert programs.of("a", {}) is a  # a config's programs, whoever asks next
    programs.of("b", {})
    programs.of("a", {})  # a used again: b is now the oldest
    programs.of("c", {})
    assert programs.of("a", {}) is a and programs.of("b", {}) == {}


def test_one_cache_serves_both_workloads():
    """A warm worker that runs both workloads compiles each config once for all its seeds."""
    from common.data import train_batch
    from common.sentiment.config import TextConfig
    from common.sentiment.loop import widths
    from compare.equivalence.sentiment import synthetic_data
    from jax_impl import adder, sentiment
    from jax_impl.core import PROGRAMS

    PROGRAMS.clear()
    data = synthetic_data()
    adder_cfg = Config(digits=3, hidden=8, batch_size=8, eval_size=16, device="cpu", threads=1)
    text_cfg = TextConfig(hidden=8, batch_size=16, eval_batch=32, device="cpu", threads=1)
    compiled = []
    for seed in (0, 1):
        one = adder.Trainer(adder_cfg.replace(seed=seed))
        one.compile(train_batch(one.cfg, 1))
        other = sentiment.Trainer(text_cfg.replace(seed=seed), data.embedding)
        other.compile(*widths(other.cfg, data))
        compiled.append((one.compile_cache, other.compile_cache))
    assert [c == "memory" for pair in compiled for c in pair] == [False, False, True, True]
