import importlib

import pytest

BACKENDS = ("jax", "torch")


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def trainer_for(backend, cfg):
    return importlib.import_module(f"{backend}_impl.train").Trainer(cfg)
