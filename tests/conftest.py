import functools
import sys

import numpy as np

import pytest

import jax_impl  # noqa: F401  before any JAX backend starts: no GPU preallocation (see the package)
from common.backends import BACKENDS, module


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def trainer_for(backend, cfg):
    return module(backend, "adder").Trainer(cfg)


@functools.cache
def gpu_available() -> bool:
    """A GPU that both frameworks can use (the GPU tests need both)."""
    from jax_impl.runtime import gpu_name as jax_gpu
    from torch_impl.runtime import gpu_name as torch_gpu

    return jax_gpu() is not None and torch_gpu() is not None


requires_gpu = pytest.mark.skipif(not gpu_available(), reason="no GPU visible to both JAX and PyTorch")


def small_disk(limit: int, argv: list[str]) -> list[str]:
    """argv run as if the disk had room for files of `limit` bytes only: RLIMIT_FSIZE makes larger
    writes fail (EFBIG, "File too large") as a full disk does, in the process and its children.
    Set in a wrapper that execs, not in a preexec_fn: forking a process that runs JAX is unsafe."""
    setup = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    return [sys.executable, "-c", setup, *argv]


# A sentiment run's data on disk, for the command line (tests/test_sentiment_run.py, test_workloads.py).
POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
NEUTRAL = ["the", "film", "plot", "was", "and", "acting", "a", "it"]


def write_text_files(tmp_path):
    """A CSV of 400 short texts whose label follows their sentiment words, and 8-d vectors in
    which those words point two ways (a few words left without a vector)."""
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    for i in range(400):
        label = i % 2
        words = list(rng.choice(NEUTRAL, rng.integers(2, 12))) + list(rng.choice(POSITIVE if label else NEGATIVE, 2))
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{'pos' if label else 'neg'}")
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n")
    vectors = []
    for word in POSITIVE + NEGATIVE + NEUTRAL[:-2]:
        direction = 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
        values = np.concatenate([[direction], 0.1 * rng.standard_normal(7)])
        vectors.append(word + " " + " ".join(f"{v:.6f}" for v in values))
    (tmp_path / "vectors.txt").write_text("\n".join(vectors) + "\n")


def text_flags(tmp_path) -> list[str]:
    """The flags of a small, quick sentiment run on `write_text_files`' data."""
    return ["--task", "sentiment", "--corpus", "csv", f"--corpus_path={tmp_path / 'texts.csv'}",
            "--csv_positive", "pos", "--csv_negative", "neg", f"--vectors={tmp_path / 'vectors.txt'}",
            "--hidden", "16", "--batch_size", "16", "--eval_batch", "40", "--steps", "60", "--eval_every", "20",
            "--lr", "0.01", "--threads", "1", "--device", "cpu"]


# Stopping a run mid-way in-process, and comparing what it left: the resume tests of the loop and
# of each workload (test_training.py, test_adder.py, test_sentiment_loop.py, test_jax_modes.py).
class Stop(Exception):
    """Stands for a kill: the run ends after a step (or a call), its checkpoints left behind."""


def stop_after(last):
    """An on_step callback that stops the run once step `last` is done."""
    def on_step(step):
        if step == last:
            raise Stop
    return on_step


def assert_bitwise(a, b):
    """Two dicts of arrays (training states, weights) equal bit for bit, name by name."""
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name
