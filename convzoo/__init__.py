"""convzoo: the classic convolutional networks, trained, exported to ONNX, served and demonstrated."""

__version__ = "0.1.0"
