"""The adder in PyTorch: nn.Embedding, nn.RNN/LSTM/GRU (cuDNN on a GPU), nn.Linear."""
