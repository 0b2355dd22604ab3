"""TopK and BatchTopK sparse autoencoders and their trainer, as in the paper's adaptation of
saprmarks/dictionary_learning (spec §6): Adam (0.9, 0.999), linear warm-up then constant lr, gradient clipping,
decoder columns kept at unit norm (and the gradient parallel to them removed), b_dec initialised to the geometric
median of the first batch, loss = ‖x − x̂‖² + auxk_alpha · auxK, where auxK reconstructs the residual from the
top ``dim/2`` pre-activations of dead features (features that have not fired for ``dead_feature_threshold``
inputs). BatchTopK keeps the k·B largest activations of a batch while training and learns an inference threshold
(EMA of the smallest kept activation).

Written here rather than taken from a library: the two models are ~100 lines, the maintained packages
(sae-lens, dictionary-learning) pull in LLM tooling we do not use, and the trainer has to read embeddings streamed
from the shard store. Plain torch, no Dagster.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import nn

Architecture = Literal["topk", "batch_topk"]
ARCHITECTURES: tuple[str, ...] = ("topk", "batch_topk")


@dataclass(frozen=True)
class SAEConfig:
    """Spec §6 defaults (train_sae.py and the dictionary_learning trainers)."""

    expansion: int = 16
    k: int = 32
    lr: float = 1e-3
    batch_size: int = 1024
    steps: int = 200
    warmup_ratio: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    auxk_alpha: float = 1 / 32
    dead_feature_threshold: int = 10_000_000
    threshold_beta: float = 0.999
    # The paper starts the BatchTopK threshold at step 1000, past its own 200 default steps, which would leave
    # the threshold unset (every positive activation kept at inference). None: min(1000, warm-up steps).
    threshold_start_step: int | None = None

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup_ratio * self.steps)

    @property
    def effective_threshold_start(self) -> int:
        return min(1000, self.warmup_steps) if self.threshold_start_step is None else self.threshold_start_step

    def as_dict(self) -> dict:
        return {**asdict(self), "betas": list(self.betas), "threshold_start_step": self.effective_threshold_start}


def unit_columns(weight: torch.Tensor) -> torch.Tensor:
    return weight / weight.norm(dim=0, keepdim=True).clamp_min(1e-8)


class TopKSAE(nn.Module):
    """x → relu(W_enc (x − b_dec) + b_enc), the k largest per input kept → W_dec f + b_dec."""

    def __init__(self, dim: int, dict_size: int, k: int):
        super().__init__()
        self.dim, self.dict_size, self.k = dim, dict_size, k
        self.encoder = nn.Linear(dim, dict_size)
        self.decoder = nn.Linear(dict_size, dim, bias=False)
        self.b_dec = nn.Parameter(torch.zeros(dim))
        with torch.no_grad():
            self.decoder.weight.copy_(unit_columns(self.decoder.weight))
            self.encoder.weight.copy_(self.decoder.weight.T)
            self.encoder.bias.zero_()

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x - self.b_dec))

    def sparsify(self, post_relu: torch.Tensor, training: bool) -> torch.Tensor:
        values, indices = post_relu.topk(min(self.k, self.dict_size), dim=-1)
        return torch.zeros_like(post_relu).scatter_(-1, indices, values)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse codes at inference."""
        return self.sparsify(self.pre_activations(x), training=False)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes) + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @property
    def atoms(self) -> torch.Tensor:
        """Decoder directions, one row per feature (dict_size, dim)."""
        return self.decoder.weight.T


class BatchTopKSAE(TopKSAE):
    """Training keeps the k·B largest activations of the whole batch; inference keeps activations above a learned
    threshold (until one is learned, -1: every positive activation)."""

    def __init__(self, dim: int, dict_size: int, k: int):
        super().__init__(dim, dict_size, k)
        self.register_buffer("threshold", torch.tensor(-1.0))

    def sparsify(self, post_relu: torch.Tensor, training: bool) -> torch.Tensor:
        if not training and self.threshold >= 0:
            return post_relu * (post_relu > self.threshold)
        flat = post_relu.flatten()
        values, indices = flat.topk(min(self.k * post_relu.shape[0], flat.numel()))
        return torch.zeros_like(flat).scatter_(-1, indices, values).reshape(post_relu.shape)


MODELS: dict[str, type[TopKSAE]] = {"topk": TopKSAE, "batch_topk": BatchTopKSAE}


def build_sae(architecture: str, dim: int, config: SAEConfig, seed: int) -> TopKSAE:
    if architecture not in MODELS:
        raise ValueError(f"unknown SAE architecture {architecture!r}; choose one of {ARCHITECTURES}")
    torch.manual_seed(seed)
    return MODELS[architecture](dim, config.expansion * dim, config.k)


def geometric_median(points: torch.Tensor, max_iter: int = 100, tol: float = 1e-5) -> torch.Tensor:
    """Weiszfeld's algorithm."""
    guess = points.mean(dim=0)
    for _ in range(max_iter):
        previous = guess
        weights = 1 / (points - guess).norm(dim=1).clamp_min(1e-8)
        guess = (weights[:, None] * points).sum(dim=0) / weights.sum()
        if (guess - previous).norm() < tol:
            break
    return guess


@dataclass
class TrainingState:
    step: int = 0
    seen: int = 0
    losses: list[float] = field(default_factory=list)


class SAETrainer:
    """One SAE's training loop; ``step(x)`` takes one batch."""

    def __init__(self, sae: TopKSAE, config: SAEConfig, device: str = "cpu"):
        self.sae, self.config, self.device = sae.to(device), config, device
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=config.betas)
        warmup = config.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)
        self.since_fired = torch.zeros(sae.dict_size, dtype=torch.long, device=device)
        self.top_k_aux = sae.dim // 2
        self.state = TrainingState()

    def _auxk_loss(self, residual: torch.Tensor, post_relu: torch.Tensor) -> torch.Tensor:
        dead = self.since_fired >= self.config.dead_feature_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return residual.new_zeros(())
        latents = torch.where(dead[None], post_relu, torch.full_like(post_relu, -math.inf))
        values, indices = latents.topk(min(self.top_k_aux, n_dead), dim=-1)
        codes = torch.zeros_like(post_relu).scatter_(-1, indices, values.clamp_min(0))
        reconstruction = self.sae.decoder(codes)
        l2 = (residual - reconstruction).pow(2).sum(dim=-1).mean()
        denominator = (residual - residual.mean(dim=0, keepdim=True)).pow(2).sum(dim=-1).mean()
        return (l2 / denominator).nan_to_num(0.0)

    def step(self, x: torch.Tensor) -> float:
        sae, config = self.sae, self.config
        x = x.to(self.device, torch.float32)
        if self.state.step == 0:
            with torch.no_grad():
                sae.b_dec.copy_(geometric_median(x))
        post_relu = sae.pre_activations(x)
        codes = sae.sparsify(post_relu, training=True)
        residual = x - sae.decode(codes)
        with torch.no_grad():
            self.since_fired += x.shape[0]
            self.since_fired[(codes > 0).any(dim=0)] = 0
        loss = residual.pow(2).sum(dim=-1).mean() + config.auxk_alpha * self._auxk_loss(residual.detach(), post_relu)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._remove_parallel_gradient()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            sae.decoder.weight.copy_(unit_columns(sae.decoder.weight))
            if isinstance(sae, BatchTopKSAE) and self.state.step >= config.effective_threshold_start:
                self._update_threshold(codes)
        self.state.step += 1
        self.state.seen += x.shape[0]
        value = float(loss.detach())
        self.state.losses.append(value)
        return value

    def _remove_parallel_gradient(self) -> None:
        weight = self.sae.decoder.weight
        if weight.grad is not None:
            columns = unit_columns(weight.detach())
            weight.grad -= columns * (weight.grad * columns).sum(dim=0, keepdim=True)

    def _update_threshold(self, codes: torch.Tensor) -> None:
        active = codes[codes > 0]
        if active.numel() == 0:
            return
        smallest = active.min()
        sae = self.sae
        if sae.threshold < 0:
            sae.threshold.copy_(smallest)
        else:
            beta = self.config.threshold_beta
            sae.threshold.copy_(beta * sae.threshold + (1 - beta) * smallest)


def train(sae: TopKSAE, batches: Iterator[torch.Tensor], config: SAEConfig, device: str = "cpu") -> SAETrainer:
    trainer = SAETrainer(sae, config, device)
    for _ in range(config.steps):
        trainer.step(next(batches))
    sae.eval()
    return trainer


@dataclass
class Evaluation:
    """Reconstruction on one pass over the data, with inference-time codes."""

    n: int
    mse: float  # mean squared error per element
    fraction_variance_explained: float
    l0: float  # mean active features per input
    dead_features: int  # features that never fire on the pass
    dict_size: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate(sae: TopKSAE, chunks: Iterable[torch.Tensor], device: str = "cpu") -> Evaluation:
    sae.eval()
    n, squared_error, sum_x, sum_x2, active = 0, 0.0, None, 0.0, 0
    fired = torch.zeros(sae.dict_size, dtype=torch.bool, device=device)
    for x in chunks:
        x = x.to(device, torch.float32)
        codes = sae.encode(x)
        squared_error += float((x - sae.decode(codes)).pow(2).sum())
        sum_x = x.sum(dim=0) if sum_x is None else sum_x + x.sum(dim=0)
        sum_x2 += float(x.pow(2).sum())
        active += int((codes > 0).sum())
        fired |= (codes > 0).any(dim=0)
        n += x.shape[0]
    if n == 0:
        raise ValueError("no embeddings to evaluate on")
    total_variance = sum_x2 - float(sum_x.pow(2).sum()) / n
    fve = 1 - squared_error / total_variance if total_variance > 0 else float("nan")
    return Evaluation(n, squared_error / (n * sae.dim), fve, active / n, int((~fired).sum()), sae.dict_size)
