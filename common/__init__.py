"""What both backends share: config, data, neutral parameters, the training loop, the run
record and the CLI.

Nothing here imports JAX or PyTorch (common.backends.module imports the one it is asked for).
"""
