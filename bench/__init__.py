"""progbench: one protocol, harness and results store for progressive knowledge distillation."""
import logging

__version__ = "0.1.0"

# torch.utils.benchmark imports cpp_extension, which warns on every CPU-only host that it found no CUDA runtime.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
