"""Seed every random number generator a notebook uses."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python's `random`, NumPy's global state and PyTorch (all devices); return a fresh NumPy Generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators
    return np.random.default_rng(seed)
