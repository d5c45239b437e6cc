"""Plots the notebooks share: training curves and attention maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plot_loss(losses: Sequence[float], title: str = "Training loss", ax=None):
    """Plot a loss curve against the step number; return the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_attention(attn_weights, tokens: Sequence[str] | None = None, title: str = "Attention weights", ax=None):
    """Draw a (T_query, T_key) attention matrix as a heat map; rows are queries, columns are keys."""
    import matplotlib.pyplot as plt

    weights = np.asarray(attn_weights.detach().cpu() if hasattr(attn_weights, "detach") else attn_weights)
    if weights.ndim != 2:
        raise ValueError(f"attn_weights must be 2-D (T_query, T_key), got shape {weights.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-12))
    if tokens is not None:
        ax.set_xticks(range(len(tokens)), labels=list(tokens), rotation=90)
        ax.set_yticks(range(len(tokens)), labels=list(tokens))
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax
