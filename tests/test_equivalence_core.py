"""compare.equivalence.core: the bounds a result is held to."""

import dataclasses

from compare.equivalence import core


def test_gpu_float32_bounds_are_wider_only_where_measured():
    cpu, gpu = core.bounds_for("gru", "float32"), core.bounds_for("gru", "float32", "gpu")
    assert (gpu.logits, gpu.trajectory) == (cpu.logits, cpu.trajectory)
    assert gpu.grads == core.GPU_FLOAT32_GRADS > cpu.grads and gpu.params == core.GPU_FLOAT32_PARAMS > cpu.params
    assert core.bounds_for("gru", "float64", "gpu") == core.bounds_for("gru", "float64")
    assert core.bounds_for("rnn-relu", "float32", "gpu").params == core.RELU_FLOAT32_BOUNDS.params  # already wider
    # The gru gap measured on an H200 (1.36e-3) breaks the CPU bound and passes the GPU one.
    result = core.Result("gru", 2, "float32", logits=6.9e-6, loss=1e-7, grads=(3.2e-6, "rnn.bias_ih_l0"),
                       trajectory=2.3e-7, params=(1.36e-3, "rnn.weight_ih_l1"), steps=100)
    assert result.violations() and not dataclasses.replace(result, device="gpu").violations()
