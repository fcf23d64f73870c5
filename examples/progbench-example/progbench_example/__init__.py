"""An example of a method that lives in its own package and reaches progbench through an entry point."""
from .ladder import KDLadder

__all__ = ["KDLadder"]
