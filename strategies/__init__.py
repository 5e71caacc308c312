"""NNI strategies for OFA supernets: thin adapters over :mod:`ofa_nni`."""

from strategies.progressive_shrinking import ProgressiveShrinking, SandwichRule

__all__ = ["ProgressiveShrinking", "SandwichRule"]
