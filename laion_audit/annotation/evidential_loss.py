"""The evidential classification loss of the paper's race classifier (train_race_classifier.py, ``--loss evidential``).

The paper's module (``utils/evidential_classification/loss.py``) is missing from the public mirror; the spec (§3)
describes it as "softplus evidence, α = e + 1, Dirichlet-MSE loss with KL annealing over 0.1 × total steps". That
is the *sum-of-squares* variant of Sensoy, Kaplan & Kandemir, "Evidential Deep Learning to Quantify
Classification Uncertainty" (NeurIPS 2018), Eq. 5, plus their KL regulariser (Eq. 9), implemented here:

* evidence ``e = softplus(logits)`` (Sensoy et al. use ReLU; softplus is what the paper's code used), Dirichlet
  parameters ``α = e + 1``, strength ``S = Σ_j α_j``, expected probabilities ``p = α / S``;
* per example ``Σ_j (y_j − p_j)² + p_j (1 − p_j) / (S + 1)`` with ``y`` the one-hot target;
* plus ``λ_t · KL(Dir(α̃) ‖ Dir(1, …, 1))`` with ``α̃ = y + (1 − y) ⊙ α`` (the evidence of the true class removed,
  so only misleading evidence is penalised), ``λ_t = min(1, t / annealing_steps)``, ``t`` the number of optimizer
  steps taken before this batch and ``annealing_steps = 0.1 × total steps`` (Sensoy et al. anneal over 10 epochs;
  the paper over a tenth of the run).

The loss is the batch mean. Uncertainty is ``u = K / S`` (paper, lines 229-231).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def dirichlet_alpha(logits: "torch.Tensor") -> "torch.Tensor":
    """α = softplus(logits) + 1, in at least float32 whatever the autocast dtype of the logits."""
    import torch
    import torch.nn.functional as F

    return F.softplus(logits if logits.dtype == torch.float64 else logits.float()) + 1.0


def kl_to_uniform_dirichlet(alpha: "torch.Tensor") -> "torch.Tensor":
    """KL(Dir(α) ‖ Dir(1)) per row: ln Γ(S) − ln Γ(K) − Σ ln Γ(α_j) + Σ (α_j − 1)(ψ(α_j) − ψ(S))."""
    import torch

    k = alpha.shape[-1]
    strength = alpha.sum(dim=-1, keepdim=True)
    return (
        torch.lgamma(strength.squeeze(-1))
        - torch.lgamma(torch.tensor(float(k), dtype=alpha.dtype, device=alpha.device))
        - torch.lgamma(alpha).sum(dim=-1)
        + ((alpha - 1.0) * (torch.digamma(alpha) - torch.digamma(strength))).sum(dim=-1)
    )


def evidential_mse_loss(logits: "torch.Tensor", targets: "torch.Tensor", kl_weight: float) -> "torch.Tensor":
    """Mean over the batch of Sensoy et al.'s Eq. 5 plus ``kl_weight`` times their KL regulariser."""
    import torch.nn.functional as F

    alpha = dirichlet_alpha(logits)
    strength = alpha.sum(dim=-1, keepdim=True)
    p = alpha / strength
    y = F.one_hot(targets, num_classes=alpha.shape[-1]).to(alpha.dtype)
    squared_error = ((y - p) ** 2).sum(dim=-1)
    variance = (p * (1.0 - p) / (strength + 1.0)).sum(dim=-1)
    alpha_tilde = y + (1.0 - y) * alpha
    return (squared_error + variance + kl_weight * kl_to_uniform_dirichlet(alpha_tilde)).mean()


def kl_annealing_weight(step: int, annealing_steps: int) -> float:
    """λ_t = min(1, t / annealing_steps): no KL pressure at the start, full weight after the first tenth."""
    return min(1.0, step / max(1, annealing_steps))


def evidential_probabilities(logits: "torch.Tensor") -> "torch.Tensor":
    """Expected class probabilities α / S of the Dirichlet (what an evidential classifier reports)."""
    alpha = dirichlet_alpha(logits)
    return alpha / alpha.sum(dim=-1, keepdim=True)


def evidential_uncertainty(logits: "torch.Tensor") -> "torch.Tensor":
    """u = K / S: 1 with no evidence at all, towards 0 as evidence accumulates."""
    alpha = dirichlet_alpha(logits)
    return alpha.shape[-1] / alpha.sum(dim=-1)
