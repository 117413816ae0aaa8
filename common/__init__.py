"""What both backends share: config, data, neutral parameters, the training loop and the CLI.

Nothing here imports JAX or PyTorch.
"""
