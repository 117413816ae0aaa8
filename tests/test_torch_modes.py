"""PyTorch's execution modes (cfg.graphs): on a CPU the eager step bit for bit, said in env; the
pieces of the CUDA-graph step that run anywhere (in-place tracking, the warm-up that leaves no
trace, checkpoints that resume across modes); and, on a GPU, graphs against eager."""

import numpy as np
import pytest
import torch

from common.config import Config
from common.data import train_batch
from compare.equivalence.core import BOUNDS
from tests.conftest import requires_gpu
from torch_impl import core
from torch_impl.adder import Trainer, loss_fn

SMALL = Config(hidden=8, embed=4, layers=2, batch_size=8, digits=3, steps=12, eval_every=4, threads=1,
               device="cpu", schedule="multistep", milestones=(3, 6), carry_state=True)


def losses(trainer: Trainer, steps: range) -> list[float]:
    out = []
    for k in steps:
        trainer.step(train_batch(trainer.cfg, k))
        out.append(trainer.loss())
    return out


def test_graphs_on_a_cpu_is_the_eager_step_bit_for_bit_and_env_says_so():
    eager, graphed = Trainer(SMALL), Trainer(SMALL.replace(graphs=True))
    assert graphed.compile(train_batch(SMALL, 1)) is None  # nothing captured: nothing to time
    assert losses(eager, range(1, 9)) == losses(graphed, range(1, 9))
    assert eager.loss_mean() == graphed.loss_mean()
    a, b = eager.training_state(), graphed.training_state()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert graphed.env()["execution"] == {"unroll": "n/a (cuDNN/ATen loop)", "steps_per_call": "n/a (eager)",
                                          "graphs": "off: no GPU"}
    assert eager.env()["execution"]["graphs"] == "off"


def test_the_sentiment_trainer_says_why_it_cannot_graph():
    from torch_impl.sentiment import Trainer as TextTrainer

    cuda = torch.device("cuda")  # the words only; nothing runs there
    assert core.graphs_mode(SMALL.replace(graphs=True), cuda, TextTrainer.GRAPHS_REFUSED) == \
        "off: variable-length text (sentiment)"
    assert core.graphs_mode(SMALL.replace(graphs=True), cuda) == "on"
    assert core.graphs_mode(SMALL.replace(graphs=True), torch.device("cpu"), TextTrainer.GRAPHS_REFUSED) == \
        "off: no GPU"
    assert core.graphs_mode(SMALL, cuda) == "off"


def test_in_place_tracking_is_the_eager_tracking():
    """The graph's tracking writes into the state's own tensors; same numbers as `tracking`."""
    eager = core.initial_tracking(torch.float32, torch.device("cpu"))
    graphed = core.initial_tracking(torch.float32, torch.device("cpu"))
    step = torch.tensor(0)
    first_bad, last, total = graphed["first_bad"], graphed["last_loss"], graphed["loss_sum"]
    for loss in (2.0, 1.5, float("nan"), 1.0, float("inf")):
        eager = core.tracking(eager, torch.tensor(loss))
        core.track_in_place(graphed, torch.tensor(loss), step)
    assert int(step) == eager["step_count"] == 5
    assert int(graphed["first_bad"]) == int(eager["first_bad"]) == 3
    assert graphed["first_bad"] is first_bad and graphed["last_loss"] is last and graphed["loss_sum"] is total
    assert float(last) == float(eager["last_loss"]) == float("inf")


def test_the_loss_mean_restarts_the_sum_in_place():
    """A captured graph adds to one loss_sum tensor: reading the mean must not replace it."""
    state = core.tracking(core.initial_tracking(torch.float64, torch.device("cpu")), torch.tensor(3.0, dtype=torch.float64))
    total = state["loss_sum"]
    state, mean = core.take_loss_mean(state, torch.device("cpu"))
    assert mean == 3.0 and state["loss_sum"] is total and float(total) == 0 and state["loss_count"] == 0


def test_a_rehearsal_leaves_no_trace():
    """The warm-up before a capture trains for real; afterwards the run must go on as if it had
    not (weights, Adam's lazily made state, the tracking), bit for bit."""
    fresh, rehearsed = Trainer(SMALL), Trainer(SMALL)
    step = torch.tensor(0)
    with core.rehearsal(lambda: core.live_tensors(rehearsed) + [step]):
        for k in range(5, 8):  # StepGraph's warm-up step, eagerly: all in place, no schedule
            a, b, target, h0 = rehearsed._on_device(train_batch(SMALL, k))
            rehearsed.opt.zero_grad(set_to_none=True)
            loss = loss_fn(rehearsed.model(a, b, h0)[0], target)
            loss.backward()
            rehearsed.opt.step()
            core.track_in_place(rehearsed.tracked, loss.detach(), step)
    assert int(step) == 0 and float(rehearsed.tracked["loss_sum"]) == 0
    assert losses(fresh, range(1, 6)) == losses(rehearsed, range(1, 6))
    a, b = fresh.training_state(), rehearsed.training_state()
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("saver, loader", [(False, True), (True, False)])
def test_checkpoints_resume_across_modes(saver, loader):
    """Same array names either way; a graphed trainer's optimiser keeps capturable when it loads
    an eager checkpoint (and the other way round): the flag says how it runs, not where it is."""
    first = Trainer(SMALL.replace(graphs=saver))
    first.opt.param_groups[0]["capturable"] = saver  # as on a GPU, where graphs=True makes it capturable
    losses(first, range(1, 5))
    state = first.training_state()
    second = Trainer(SMALL.replace(graphs=loader))
    second.opt.param_groups[0]["capturable"] = loader
    second.restore(state)
    assert second.opt.param_groups[0]["capturable"] is loader
    reference = Trainer(SMALL)
    losses(reference, range(1, 5))
    assert losses(second, range(5, 13)) == losses(reference, range(5, 13))


def test_a_capturable_optimizer_trains_as_the_eager_one():
    """capturable=True takes the same fused Adam kernel (torch/optim/adam.py `_fused_adam`): the
    same numbers, here on the CPU."""
    params = [torch.nn.Parameter(torch.linspace(-1, 1, 7)) for _ in range(2)]
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opts = [core.make_optimizer(SMALL, ps, capturable=c)[0] for ps, c in ((params, False), (copies, True))]
    for k in range(5):
        for ps, opt in zip((params, copies), opts):
            opt.zero_grad()
            sum(((p - 0.1 * k) ** 2).sum() for p in ps).backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, copies))


# ------------------------------------------------------------------------------------ on a GPU

GPU = SMALL.replace(device="gpu", hidden=32, embed=8, batch_size=64, digits=5, steps=40, milestones=(10, 20))


def relative_gap(a: list[float], b: list[float]) -> float:
    a, b = np.array(a), np.array(b)
    return float(np.max(np.abs(a - b) / np.abs(a)))


@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_graphs_match_eager_on_a_gpu_and_resume(dtype):
    """The same run graphed and eager (carried state, a schedule that forces recaptures at its
    milestones): losses within today's float32 run-loss bound (the same kernels in the same
    order should give equal numbers); a graphed checkpoint resumes in an eager trainer and the
    other way round."""
    cfg = GPU.replace(dtype=dtype)
    eager, graphed = Trainer(cfg), Trainer(cfg.replace(graphs=True))
    assert graphed.env()["execution"]["graphs"] == "on"
    assert graphed.compile(train_batch(cfg, 1)) > 0
    a, b = losses(eager, range(1, 31)), losses(graphed, range(1, 31))
    assert relative_gap(a, b) <= BOUNDS[dtype].trajectory, (a, b)
    assert abs(eager.loss_mean() - graphed.loss_mean()) <= BOUNDS[dtype].trajectory * abs(eager.loss())
    for saver, loader in ((graphed, Trainer(cfg)), (eager, Trainer(cfg.replace(graphs=True)))):
        loader.compile(train_batch(cfg, 1))
        loader.restore(saver.training_state())
        assert relative_gap(losses(saver, range(31, 41)), losses(loader, range(31, 41))) <= BOUNDS[dtype].trajectory


@requires_gpu
def test_a_graphed_run_diverges_where_the_eager_one_does():
    cfg = GPU.replace(lr=1e4, schedule="constant", milestones=())
    eager, graphed = Trainer(cfg), Trainer(cfg.replace(graphs=True))
    losses(eager, range(1, 41)), losses(graphed, range(1, 41))
    assert graphed.nonfinite_step() == eager.nonfinite_step()
