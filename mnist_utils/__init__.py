"""mnist_utils: the hand-written, tested package behind the MNIST CNN notebooks and report."""

__version__ = "0.1.0"
