"""progbench: one protocol, harness and results store for progressive knowledge distillation."""
__version__ = "0.1.0"
