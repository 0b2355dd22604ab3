"""Fine-tuning the gender and race/ethnicity image classifiers with the recipe of Girrbach et al.

The published labels come from OpenCLIP image towers with a linear head, fully fine-tuned on crops whose
label an MLLM ensemble agreed on (train_gender_classifier.py / train_race_classifier.py in
ExplainableML/LAION-400M-Person-Centric-Annotations). This module reproduces that loop for any
``torch.nn.Module`` that maps a batch of preprocessed images to logits, so the same code trains the
production SigLIP classifier and the tiny models of the tests:

* a recipe per question (``PAPER_RECIPES``, ``recipe_for``): gender cross-entropy at lr 1e-5; race the evidential
  loss (evidential_loss.py) at lr 1e-4 with every class resampled to floor(largest / 4); any departure from the
  paper listed in the recipe's ``deviations`` and in the run's metadata;
* AdamW (default weight decay) with a OneCycle schedule stepped once per batch;
* CUDA when available (bf16 autocast), else the CPU, said in the metadata; images decoded and preprocessed in
  DataLoader worker processes following a batch order planned here (training_batches.py), crops streamed;
* optionally the paper's ``--train-cls-layer-first``: one epoch of head-only training at a fixed lr
  of 1e-3, then OneCycle over all parameters for the remaining epochs;
* validation after every epoch, keeping the weights of the epoch with the best validation accuracy;
* the paper's validation metrics (accuracy, Cohen's kappa, mean uncertainty u = 1 - max softmax and
  the AUROC of "mispredicted" against u), plus per-class accuracy and the confusion matrix, because the
  audit reports errors per demographic group rather than a single number.

The paper does not state its split sizes; ``split_dataset`` draws a seeded, stratified split and returns
it so the run's lineage can record exactly which examples were held out.

Per-class counts, confusion matrices and split lists describe people of one demographic class, so only
``published_metrics`` (cells below k nulled, see stats/group_statistics.suppress_matrix) leave restricted
storage; ``restricted_metrics`` is the full record with per-class supports (annotation/classifiers.py decides
where each goes).

Torch is imported inside the functions only: the Dagster code location imports this module to build
its definitions, and must not pay for (or require) torch to do so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from laion_audit.annotation.training_batches import ExampleSource

SPLIT_NAMES = ("train", "val", "test")


LOSSES = ("cross_entropy", "evidential")


@dataclass(frozen=True)
class TrainingRecipe:
    """Hyper-parameters of one training run; defaults are those of train_gender_classifier.py.

    ``lr`` is the peak (max) learning rate of the OneCycle schedule and ``min_lr`` its starting value
    (``div_factor = lr / min_lr``), as in the original script. ``lr=1e-5`` suits fine-tuning a pretrained
    backbone; a model trained from scratch needs a much larger value. ``weight_decay=None`` keeps
    AdamW's default (0.01). ``head_first_lr`` is the fixed rate of the head-only first epoch, hard-coded
    to 1e-3 in the original.

    ``loss``: ``cross_entropy`` (gender) or ``evidential`` (race; annotation/evidential_loss.py, its KL term
    annealed over ``kl_anneal_fraction`` of the total steps). ``resample_divisor``: when set, the training split
    is rebalanced to ⌊largest class / divisor⌋ per class (race: 4; training_batches.resample_to_fraction_of_largest).

    How the run executes, not what it computes: ``device`` (None: CUDA when available, else CPU),
    ``mixed_precision`` (bf16 autocast, CUDA only), ``loader_workers`` (DataLoader processes decoding and
    preprocessing; results do not depend on it) and ``shuffle_window_groups`` (None: a uniform shuffle of the
    whole split each epoch; n: shard-window shuffling, see training_batches.py).

    ``name`` says which recipe this is (``paper-gender``, ``paper-race`` or ``custom``) and ``deviations`` lists,
    in words, every way it departs from the paper's (``recipe_for`` fills it); both go into the classifier's
    metadata with every other field.
    """

    batch_size: int = 32
    epochs: int = 10
    lr: float = 1e-5
    min_lr: float = 1e-6
    pct_start: float = 0.3
    weight_decay: float | None = None
    train_head_first: bool = False
    head_prefix: str = "head"
    head_first_lr: float = 1e-3
    seed: int = 0
    device: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    loss: str = "cross_entropy"
    kl_anneal_fraction: float = 0.1
    resample_divisor: int | None = None
    mixed_precision: bool = True
    loader_workers: int = 0
    shuffle_window_groups: int | None = None
    name: str = "custom"
    deviations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.head_first_lr <= 0:
            raise ValueError(f"head_first_lr must be > 0, got {self.head_first_lr}")
        if not self.head_prefix:
            raise ValueError("head_prefix must be a non-empty parameter-name prefix")
        if self.val_fraction < 0 or self.test_fraction < 0 or self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "need val_fraction >= 0, test_fraction >= 0 and val_fraction + test_fraction < 1, got "
                f"{self.val_fraction} and {self.test_fraction}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0 < self.kl_anneal_fraction <= 1:
            raise ValueError(f"kl_anneal_fraction must be in (0, 1], got {self.kl_anneal_fraction}")
        if self.resample_divisor is not None and self.resample_divisor < 1:
            raise ValueError(f"resample_divisor must be >= 1 or None, got {self.resample_divisor}")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")
        if self.shuffle_window_groups is not None and self.shuffle_window_groups < 1:
            raise ValueError(f"shuffle_window_groups must be >= 1 or None, got {self.shuffle_window_groups}")

    def as_record(self) -> dict[str, Any]:
        """Every field, JSON-ready: what classifier.json and the training record keep of the recipe."""
        record = asdict(self)
        record["deviations"] = list(self.deviations)
        return record


# The paper's recipes (spec §2-3): train_gender_classifier.py and train_race_classifier.py defaults.
PAPER_RECIPES = {
    "gender": TrainingRecipe(name="paper-gender", batch_size=32, epochs=10, lr=1e-5, min_lr=1e-6,
                             loss="cross_entropy"),
    "race": TrainingRecipe(name="paper-race", batch_size=32, epochs=10, lr=1e-4, min_lr=1e-6, loss="evidential",
                           kl_anneal_fraction=0.1, resample_divisor=4),
}
# Fields that change what is learnt; a difference from the paper's value is a deviation.
_RESULT_FIELDS = ("batch_size", "epochs", "lr", "min_lr", "pct_start", "weight_decay", "train_head_first",
                  "head_first_lr", "loss", "kl_anneal_fraction", "resample_divisor")
# Differences of this pipeline from the paper's whatever the hyper-parameters.
_DATA_DEVIATIONS = {
    "gender": ("trained on this pipeline's MLLM-ensemble consensus crops of the audited shards, split seeded and "
               "stratified by val_fraction/test_fraction (paper: HF LGirrbach/gender-dataset-v1 train/val, split "
               "sizes not stated)",),
    "race": ("trained on this pipeline's MLLM-ensemble consensus crops of the audited shards, split seeded and "
             "stratified by val_fraction/test_fraction (paper: PHASE crops or HF LGirrbach/race-dataset-v1; which "
             "produced the deployed model is not stated)",
             "evidential loss re-implemented from its description (Sensoy et al. 2018 Eq. 5 + annealed KL, softplus "
             "evidence): the paper's utils/evidential_classification/loss.py is not public"),
}


def paper_recipe(question: str) -> TrainingRecipe:
    if question not in PAPER_RECIPES:
        raise ValueError(f"no paper recipe for {question!r}; known: {sorted(PAPER_RECIPES)}")
    return PAPER_RECIPES[question]


def recipe_for(question: str, *, reasons: dict[str, str] | None = None, **overrides: Any) -> TrainingRecipe:
    """The paper's recipe for ``question`` with ``overrides``, its ``deviations`` filled in.

    Every override of a result-changing field that differs from the paper's value becomes a deviation, with the
    reason from ``reasons[field]`` when given (e.g. the tiny profile's random backbone needs a larger lr).
    """
    extra = tuple(overrides.pop("deviations", ()))
    paper = paper_recipe(question)
    base = replace(paper, **overrides)
    reasons = reasons or {}
    deviations = list(_DATA_DEVIATIONS.get(question, ()))
    for name in _RESULT_FIELDS:
        ours, theirs = getattr(base, name), getattr(paper, name)
        if ours != theirs:
            why = f": {reasons[name]}" if name in reasons else ""
            deviations.append(f"{name} {ours!r} instead of the paper's {theirs!r}{why}")
    return replace(base, deviations=tuple(deviations) + extra)


@dataclass
class TrainingResult:
    """Outcome of ``train_classifier``.

    ``best_state_dict`` holds CPU copies of the weights of ``best_epoch`` (1-based). ``history`` has one
    record per epoch (train loss, validation loss/accuracy/kappa/uncertainty). ``val_metrics`` and
    ``test_metrics`` are ``classification_metrics`` of the best checkpoint (``test_metrics`` is None when
    the test split is empty). ``splits`` are the indices into the inputs that were used for each split;
    ``train_indices`` the training examples actually used per epoch (after resampling: repeats possible).
    ``metadata`` says how the run executed (device, precision, shuffle) and lists the recipe's and the run's
    deviations from the paper; it counts no demographic class.
    """

    best_state_dict: dict[str, Any]
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, Any]]
    splits: dict[str, list[int]]
    val_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    class_names: list[str]
    recipe: TrainingRecipe
    metadata: dict[str, Any] = field(default_factory=dict)
    train_indices: list[int] = field(default_factory=list)


def split_dataset(labels: Sequence[int], recipe: TrainingRecipe = TrainingRecipe()) -> dict[str, list[int]]:
    """Seeded stratified train/val/test split of ``range(len(labels))``.

    Each class is shuffled on its own and cut by ``val_fraction``/``test_fraction`` (rounded), so rare
    demographic classes are represented in every split instead of vanishing from validation by chance.
    A class with at least 3 examples gets at least one example in each split whose fraction is non-zero
    and keeps at least one for training; a class with fewer than 3 examples goes to training only.
    The result depends only on the labels and ``recipe.seed``/fractions; indices are sorted per split.
    """
    labels = [int(label) for label in labels]
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)

    rng = np.random.default_rng(recipe.seed)
    splits: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for label in sorted(by_class):
        members = by_class[label]
        order = [members[i] for i in rng.permutation(len(members))]
        n = len(order)
        n_val = n_test = 0
        if n >= 3:
            n_val = _held_out_count(n, recipe.val_fraction)
            n_test = _held_out_count(n, recipe.test_fraction)
            while n_val + n_test > n - 1:
                # Rounding up both held-out parts of a small class can leave nothing to train on.
                if n_val >= n_test:
                    n_val -= 1
                else:
                    n_test -= 1
        splits["val"].extend(order[:n_val])
        splits["test"].extend(order[n_val : n_val + n_test])
        splits["train"].extend(order[n_val + n_test :])
    return {name: sorted(indices) for name, indices in splits.items()}


def _held_out_count(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, int(round(n * fraction)))


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    uncertainty: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class accuracy, Cohen's kappa, confusion matrix and the paper's uncertainty stats.

    Labels are indices into ``class_names``; the confusion matrix has rows = true class and columns =
    predicted class, both in ``class_names`` order. Per-class accuracy is the recall of each class (None
    for a class without examples), because the audit needs to know whose crops the classifier gets
    wrong. Kappa is None where it is undefined (e.g. one class only). When ``uncertainty`` (u = 1 - max
    softmax per example) is given, ``mean_uncertainty`` and ``auroc_mispredicted`` (how well u ranks the
    errors above the correct predictions; None unless both outcomes occur) are filled, as in the paper's
    validation; otherwise they are None.
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

    y_true = [int(v) for v in y_true]
    y_pred = [int(v) for v in y_pred]
    class_names = list(class_names)
    k = len(class_names)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} entries, y_pred {len(y_pred)}")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        bad = sorted({v for v in values if not 0 <= v < k})
        if bad:
            raise ValueError(f"{name} has labels {bad} outside 0..{k - 1} ({k} class names)")
    n = len(y_true)

    if n:
        matrix = confusion_matrix(y_true, y_pred, labels=list(range(k)))
    else:
        matrix = np.zeros((k, k), dtype=np.int64)
    support = matrix.sum(axis=1)
    per_class = {
        name: (float(matrix[i, i] / support[i]) if support[i] else None) for i, name in enumerate(class_names)
    }
    accuracy = float(np.trace(matrix) / n) if n else None

    kappa = None
    if n:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            value = float(cohen_kappa_score(y_true, y_pred, labels=list(range(k))))
        kappa = value if math.isfinite(value) else None

    mean_u = auroc = None
    if uncertainty is not None:
        u = [float(v) for v in uncertainty]
        if len(u) != n:
            raise ValueError(f"uncertainty has {len(u)} entries, labels {n}")
        if n:
            mean_u = float(np.mean(u))
            mispredicted = [t != p for t, p in zip(y_true, y_pred)]
            if 0 < sum(mispredicted) < n:
                auroc = float(roc_auc_score(mispredicted, u))

    return {
        "n": n,
        "accuracy": accuracy,
        "per_class_accuracy": per_class,
        "kappa": kappa,
        "confusion_matrix": matrix.astype(int).tolist(),
        "class_names": class_names,
        "mean_uncertainty": mean_u,
        "auroc_mispredicted": auroc,
    }


# Overall figures of a metrics dict, published only when the classifier saw at least k examples.
_OVERALL = ("accuracy", "kappa", "mean_uncertainty", "auroc_mispredicted")


def published_metrics(metrics: dict[str, Any], k_min: int | None = None, *,
                      n_examples: int | None = None) -> dict[str, Any]:
    """What of ``classification_metrics`` may be published: no cell that counts fewer than ``k_min`` people.

    * overall accuracy, kappa and the uncertainty figures: kept when ``n_examples`` (the classifier's training
      examples; the split's ``n`` when not given) is at least ``k_min``, else None;
    * ``per_class_accuracy``: only for classes with at least ``k_min`` examples in the split (support = row sum
      of the confusion matrix), None for the others;
    * ``confusion_matrix``: cells below ``k_min`` (zeros too) and their complements None (suppress_matrix);
    * ``suppressed_below`` = ``k_min`` marks the dict as published (a second pass leaves it alone).

    The split size ``n`` and the class names stay. Works on partial dicts (an imported checkpoint's metrics).
    """
    from laion_audit.stats.group_statistics import K_MIN, suppress_matrix

    k_min = K_MIN if k_min is None else k_min
    matrix = metrics.get("confusion_matrix")
    class_names = list(metrics.get("class_names") or (metrics.get("per_class_accuracy") or {}))
    support = [sum(row) for row in matrix] if matrix else []
    enough = (n_examples if n_examples is not None else metrics.get("n") or 0) >= k_min
    out: dict[str, Any] = {"n": metrics.get("n"), "class_names": class_names, "suppressed_below": k_min}
    out.update({key: (metrics.get(key) if enough else None) for key in _OVERALL})
    per_class = metrics.get("per_class_accuracy") or {}
    out["per_class_accuracy"] = {
        name: (per_class.get(name) if i < len(support) and support[i] >= k_min else None)
        for i, name in enumerate(class_names)
    }
    out["confusion_matrix"] = suppress_matrix(matrix, k_min) if matrix else matrix
    return out


def restricted_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The full metrics plus ``per_class_support`` (examples per true class): for restricted storage only."""
    matrix = metrics.get("confusion_matrix") or []
    names = list(metrics.get("class_names") or [])
    return {**metrics, "per_class_support": {name: int(sum(row)) for name, row in zip(names, matrix)}}


def train_classifier(
    model: "torch.nn.Module",
    preprocess: Callable[[Any], "torch.Tensor"],
    images: "Sequence[Image.Image] | ExampleSource",
    labels: Sequence[int],
    class_names: Sequence[str],
    recipe: TrainingRecipe = TrainingRecipe(),
    *,
    splits: dict[str, list[int]] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train ``model`` on ``images``/``labels`` with ``recipe``; return the best-validation checkpoint.

    ``model`` maps a float batch (B, C, H, W) to logits (B, len(class_names)); ``preprocess`` maps one image to a
    (C, H, W) tensor. ``images`` is a list of images or an ExampleSource (training_batches.py) that cuts crops
    from the shards on demand: either way the images are decoded and preprocessed batch by batch in
    ``recipe.loader_workers`` DataLoader processes, so a paper-scale crop set never sits in memory.
    ``splits`` (keys train/val/test, indices into the inputs) replaces the seeded stratified split, e.g. for a
    dataset shipped with fixed splits. ``on_epoch_end`` receives each history record as it is produced.

    The learning rate follows OneCycle stepped per batch, as in the original: a short warm-up from
    ``min_lr`` protects the pretrained backbone from large early updates of a randomly initialised head,
    and the cosine decay to ~0 lets the final epochs settle. Because that schedule is tied to the total
    number of steps, the returned weights are those of the epoch with the best validation accuracy (first
    such epoch on ties, as the original's strict ``>``), not the last: with full fine-tuning the backbone
    can overfit the (small, consensus-filtered) training set in later epochs. On return the model holds
    the best weights (on the training device), and the validation and test metrics are those of that checkpoint.

    The race recipe rebalances the training split once, before the first epoch (``resample_divisor``), as the
    original rebalances its training set; validation and test keep their natural class mix. Its validation
    uncertainty is the evidential u = K/S; the cross-entropy recipe's is 1 - max softmax.

    On CUDA the forward pass runs under bf16 autocast (``mixed_precision``); losses are computed in float32.
    Training is deterministic on CPU for a given ``recipe.seed`` whatever ``loader_workers`` (the batch order
    is planned in this process); initialising the model is the caller's business.
    """
    import torch
    from torch.optim.lr_scheduler import OneCycleLR

    from laion_audit.annotation.evidential_loss import (
        evidential_mse_loss,
        evidential_uncertainty,
        kl_annealing_weight,
    )
    from laion_audit.annotation.training_batches import (
        InMemoryImages,
        batch_loader,
        plan_batches,
        resample_to_fraction_of_largest,
    )

    class_names = list(class_names)
    labels = [int(label) for label in labels]
    source = images if hasattr(images, "load") and hasattr(images, "group") else InMemoryImages(images, labels)
    if len(source.labels) != len(labels):
        raise ValueError(f"{len(source.labels)} images but {len(labels)} labels")
    if list(source.labels) != labels:
        raise ValueError("the example source's labels differ from the labels given")
    if len(set(class_names)) != len(class_names) or not class_names:
        raise ValueError(f"class_names must be non-empty and unique, got {class_names}")
    bad = sorted({label for label in labels if not 0 <= label < len(class_names)})
    if bad:
        raise ValueError(f"labels {bad} outside 0..{len(class_names) - 1}")

    splits = split_dataset(labels, recipe) if splits is None else _checked_splits(splits, len(labels))
    if not splits["train"]:
        raise ValueError("the training split is empty")
    if not splits["val"]:
        raise ValueError("the validation split is empty; the best checkpoint is chosen on it")

    device = _training_device(recipe.device)
    autocast = device.type == "cuda" and recipe.mixed_precision
    torch.manual_seed(recipe.seed)
    model.to(device)
    evidential = recipe.loss == "evidential"
    cross_entropy = torch.nn.CrossEntropyLoss()

    train_indices = list(splits["train"])
    if recipe.resample_divisor is not None:
        train_indices = resample_to_fraction_of_largest(labels, train_indices, recipe.resample_divisor, recipe.seed)
    steps_per_epoch = math.ceil(len(train_indices) / recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    annealing_steps = max(1, round(recipe.kl_anneal_fraction * total_steps))
    step = 0  # optimizer steps taken, for the KL annealing

    def loss_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if evidential:
            return evidential_mse_loss(logits, y, kl_annealing_weight(step, annealing_steps))
        return cross_entropy(logits.float(), y)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        if logits.ndim != 2 or logits.shape[1] != len(class_names):
            raise ValueError(
                f"model returned logits of shape {tuple(logits.shape)}, expected (batch, {len(class_names)})"
            )
        return logits.float()

    def batches(indices: list[int], seed: int | None):
        plan = plan_batches(source, indices, recipe.batch_size, seed=seed, window_groups=recipe.shuffle_window_groups)
        loader = batch_loader(source, plan, preprocess, workers=recipe.loader_workers,
                              pin_memory=device.type == "cuda")
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def evaluate(indices: list[int]) -> tuple[dict[str, Any], float]:
        model.eval()
        preds: list[int] = []
        uncertainty: list[float] = []
        total_loss = 0.0
        truth: list[int] = []
        with torch.no_grad():
            for x, y in batches(indices, seed=None):
                logits = forward(x)
                total_loss += float(loss_of(logits, y)) * len(y)
                preds.extend(logits.argmax(dim=-1).tolist())
                truth.extend(y.tolist())
                if evidential:
                    uncertainty.extend(evidential_uncertainty(logits).tolist())
                else:
                    uncertainty.extend((1 - torch.softmax(logits, dim=-1).max(dim=-1).values).tolist())
        metrics = classification_metrics(truth, preds, class_names, uncertainty)
        return metrics, total_loss / len(indices)

    def full_optimizer(epochs: int) -> tuple[torch.optim.Optimizer, OneCycleLR]:
        kwargs = {} if recipe.weight_decay is None else {"weight_decay": recipe.weight_decay}
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=recipe.lr, **kwargs)
        scheduler = OneCycleLR(
            optimizer,
            max_lr=recipe.lr,
            total_steps=epochs * steps_per_epoch,
            pct_start=recipe.pct_start,
            anneal_strategy="cos",
            div_factor=recipe.lr / recipe.min_lr,
        )
        return optimizer, scheduler

    requires_grad_before = {name: p.requires_grad for name, p in model.named_parameters()}
    scheduler: OneCycleLR | None
    if recipe.train_head_first:
        head = {name: p for name, p in model.named_parameters() if _is_head(name, recipe.head_prefix)}
        if not head:
            raise ValueError(f"train_head_first: no parameter name starts with {recipe.head_prefix!r}")
        for name, p in model.named_parameters():
            p.requires_grad_(name in head and requires_grad_before[name])
        kwargs = {} if recipe.weight_decay is None else {"weight_decay": recipe.weight_decay}
        optimizer = torch.optim.AdamW(
            [p for p in head.values() if p.requires_grad], lr=recipe.head_first_lr, **kwargs
        )
        scheduler = None
    else:
        optimizer, scheduler = full_optimizer(recipe.epochs)

    history: list[dict[str, Any]] = []
    best_state: dict[str, Any] | None = None
    best_epoch = 0
    best_accuracy = -1.0
    try:
        for epoch in range(1, recipe.epochs + 1):
            phase = "head" if recipe.train_head_first and epoch == 1 else "full"
            if recipe.train_head_first and epoch == 2:
                for name, p in model.named_parameters():
                    p.requires_grad_(requires_grad_before[name])
                optimizer, scheduler = full_optimizer(recipe.epochs - 1)

            model.train()
            total_loss = 0.0
            for x, y in batches(train_indices, seed=_epoch_seed(recipe.seed, epoch)):
                loss = loss_of(forward(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if scheduler is not None:
                    scheduler.step()
                total_loss += float(loss.detach()) * len(y)

            val, val_loss = evaluate(splits["val"])
            record = {
                "epoch": epoch,
                "phase": phase,
                "lr_end": float(optimizer.param_groups[0]["lr"]),
                "train_loss": total_loss / len(train_indices),
                "val_loss": val_loss,
                "val_accuracy": val["accuracy"],
                "val_kappa": val["kappa"],
                "val_mean_uncertainty": val["mean_uncertainty"],
                "val_auroc_mispredicted": val["auroc_mispredicted"],
            }
            history.append(record)
            if val["accuracy"] > best_accuracy:
                best_accuracy = val["accuracy"]
                best_epoch = epoch
                best_state = {
                    key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()
                }
            if on_epoch_end is not None:
                on_epoch_end(dict(record))
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad_before[name])

    assert best_state is not None
    model.load_state_dict(best_state)
    val_metrics, _ = evaluate(splits["val"])
    test_metrics = evaluate(splits["test"])[0] if splits["test"] else None

    shuffle_global = plan_batches(source, train_indices, recipe.batch_size, seed=0,
                                  window_groups=recipe.shuffle_window_groups).global_shuffle
    return TrainingResult(
        best_state_dict=best_state,
        best_epoch=best_epoch,
        best_val_accuracy=best_accuracy,
        history=history,
        splits={name: list(indices) for name, indices in splits.items()},
        val_metrics=val_metrics,
        test_metrics=test_metrics,
        class_names=class_names,
        recipe=recipe,
        metadata=run_metadata(recipe, device, autocast, shuffle_global, steps_per_epoch, len(labels)),
        train_indices=train_indices,
    )


def _training_device(requested: str | None) -> "torch.device":
    """``requested``, or the current CUDA device when there is one, else the CPU; always with its index on CUDA."""
    import torch

    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _epoch_seed(seed: int, epoch: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def run_metadata(recipe: TrainingRecipe, device: "torch.device", autocast: bool, shuffle_global: bool,
                 steps_per_epoch: int, n_examples: int) -> dict[str, Any]:
    """How the run executed, and every deviation from the paper: the recipe's own plus the run's."""
    deviations = list(recipe.deviations)
    if autocast:
        deviations.append("forward pass under bf16 autocast on CUDA (the paper's precision is not stated)")
    if not shuffle_global:
        deviations.append(f"training order shuffled within windows of {recipe.shuffle_window_groups} shards, "
                          "shard order reshuffled each epoch (paper: a uniform shuffle of the whole training set)")
    meta: dict[str, Any] = {
        "steps_per_epoch": steps_per_epoch,
        "n_examples": n_examples,
        "device": str(device),
        "precision": "bf16-autocast" if autocast else "fp32",
        "loader_workers": recipe.loader_workers,
        "shuffle": "global" if shuffle_global else f"window of {recipe.shuffle_window_groups} shards",
        "recipe": recipe.as_record(),
        "deviations": deviations,
    }
    if device.type == "cpu":
        meta["device_note"] = ("trained on the CPU" + ("" if recipe.device == "cpu" else ": no CUDA device was "
                               "available") + "; same recipe, in fp32, far slower than on a GPU")
    return meta


def _is_head(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` is in module ``prefix``: ``head`` matches ``head.weight``, not ``header.x``."""
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


def _checked_splits(splits: dict[str, list[int]], n: int) -> dict[str, list[int]]:
    unknown = set(splits) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; expected {SPLIT_NAMES}")
    checked = {name: [int(i) for i in splits.get(name, [])] for name in SPLIT_NAMES}
    seen: set[int] = set()
    for name, indices in checked.items():
        out_of_range = [i for i in indices if not 0 <= i < n]
        if out_of_range:
            raise ValueError(f"split {name!r} has indices outside 0..{n - 1}: {out_of_range[:5]}")
        overlap = seen.intersection(indices)
        if overlap or len(set(indices)) != len(indices):
            raise ValueError(f"split {name!r} repeats or shares indices: {sorted(overlap)[:5]}")
        seen.update(indices)
    return checked
