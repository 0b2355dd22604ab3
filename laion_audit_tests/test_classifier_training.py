"""Classifier fine-tuning: toy task learnt, metrics checked by hand, stratified splits, head-first, best-val."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from laion_audit.annotation.classifier_training import (
    TrainingRecipe,
    classification_metrics,
    split_dataset,
    train_classifier,
)

CLASSES = ["red", "green", "blue"]
# The paper's lr=1e-5 is for fine-tuning a pretrained backbone; these toy models start from scratch.
FAST = TrainingRecipe(batch_size=16, epochs=4, lr=1e-2, min_lr=1e-3, seed=0)


def colour_images(per_class: int = 60, size: int = 32, seed: int = 0) -> tuple[list[Image.Image], list[int]]:
    """Noisy images whose class is the dominant colour channel."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(CLASSES)):
        for _ in range(per_class):
            pixels = rng.uniform(0, 150, size=(size, size, 3))
            pixels[..., label] += 80
            images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))
            labels.append(label)
    return images, labels


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class TinyNet(nn.Module):
    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(8, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data():
    return colour_images()


@pytest.fixture(scope="module")
def trained(data):
    images, labels = data
    model = tiny_net()
    states: list[dict[str, torch.Tensor]] = []
    records: list[dict] = []

    def on_epoch_end(record):
        records.append(record)
        states.append(snapshot(model))

    result = train_classifier(model, to_tensor, images, labels, CLASSES, FAST, on_epoch_end=on_epoch_end)
    return model, result, states, records


def test_learns_the_colour_task_well_above_chance(trained):
    _, result, _, _ = trained
    assert result.test_metrics is not None
    assert result.test_metrics["accuracy"] >= 0.8, result.test_metrics
    assert result.val_metrics["accuracy"] >= 0.8, result.val_metrics
    assert result.test_metrics["n"] == len(result.splits["test"])
    assert result.test_metrics["class_names"] == CLASSES
    assert len(result.history) == FAST.epochs
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert all(r["phase"] == "full" for r in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.metadata["steps_per_epoch"] == -(-len(result.splits["train"]) // FAST.batch_size)


def test_best_checkpoint_is_the_first_best_validation_epoch(trained, data):
    model, result, states, records = trained
    accuracies = [r["val_accuracy"] for r in result.history]
    assert records == result.history
    assert result.best_epoch == 1 + accuracies.index(max(accuracies))
    assert result.best_val_accuracy == max(accuracies)
    assert same_state(result.best_state_dict, states[result.best_epoch - 1])
    assert same_state(model.state_dict(), result.best_state_dict)
    assert result.val_metrics["accuracy"] == result.history[result.best_epoch - 1]["val_accuracy"]


class PooledLinear(nn.Module):
    """Channel means -> linear head; weights are set by hand below."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x))


def set_head(model: PooledLinear, good: bool) -> None:
    with torch.no_grad():
        if good:  # argmax of channel means = dominant colour
            model.head.weight.copy_(10 * torch.eye(3))
            model.head.bias.zero_()
        else:  # always "red"
            model.head.weight.zero_()
            model.head.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))


def test_best_checkpoint_is_a_copy_not_the_final_weights(data):
    """Val accuracy scripted to peak at epoch 2 (lr ~0, weights swapped between epochs): epoch 2 is returned."""
    images, labels = data
    model = PooledLinear()
    set_head(model, good=False)
    script = {1: True, 2: False}  # weights the next epoch starts from

    def on_epoch_end(record):
        if record["epoch"] in script:
            set_head(model, good=script[record["epoch"]])

    recipe = TrainingRecipe(batch_size=32, epochs=3, lr=1e-9, min_lr=1e-10, weight_decay=0.0)
    result = train_classifier(model, to_tensor, images, labels, CLASSES, recipe, on_epoch_end=on_epoch_end)
    accuracies = [r["val_accuracy"] for r in result.history]
    assert accuracies[1] == 1.0 and accuracies[0] < 0.5 and accuracies[2] < 0.5, accuracies
    assert result.best_epoch == 2
    assert torch.allclose(result.best_state_dict["head.weight"], 10 * torch.eye(3), atol=1e-6)
    assert torch.allclose(model.head.weight, 10 * torch.eye(3), atol=1e-6)  # best weights reloaded
    assert result.val_metrics["accuracy"] == 1.0
    assert result.test_metrics["accuracy"] == 1.0


def test_training_is_deterministic_for_a_seed(data, trained):
    images, labels = data
    _, first, _, _ = trained
    again = train_classifier(tiny_net(), to_tensor, images, labels, CLASSES, FAST)
    assert again.history == first.history
    assert again.splits == first.splits
    assert same_state(again.best_state_dict, first.best_state_dict)


def test_train_head_first_freezes_the_backbone_for_one_epoch(data):
    images, labels = data
    model = tiny_net()
    initial = snapshot(model)
    states = []
    recipe = TrainingRecipe(batch_size=16, epochs=2, lr=1e-2, min_lr=1e-3, train_head_first=True)
    result = train_classifier(
        model, to_tensor, images, labels, CLASSES, recipe, on_epoch_end=lambda r: states.append(snapshot(model))
    )
    after_head_epoch, after_full_epoch = states
    assert [r["phase"] for r in result.history] == ["head", "full"]
    assert result.history[0]["lr_end"] == pytest.approx(1e-3)
    for name in ("features.0.weight", "features.0.bias"):
        assert torch.equal(after_head_epoch[name], initial[name]), name
        assert not torch.equal(after_full_epoch[name], initial[name]), name
    assert not torch.equal(after_head_epoch["head.weight"], initial["head.weight"])
    assert all(p.requires_grad for p in model.parameters())


def test_train_head_first_single_epoch_touches_only_the_head(data):
    images, labels = data
    model = tiny_net()
    initial = snapshot(model)
    recipe = TrainingRecipe(batch_size=16, epochs=1, lr=1e-2, min_lr=1e-3, train_head_first=True)
    train_classifier(model, to_tensor, images, labels, CLASSES, recipe)
    final = snapshot(model)
    assert torch.equal(final["features.0.weight"], initial["features.0.weight"])
    assert not torch.equal(final["head.weight"], initial["head.weight"])


def test_train_head_first_needs_a_matching_head(data):
    images, labels = data
    recipe = TrainingRecipe(epochs=1, train_head_first=True, head_prefix="classifier")
    with pytest.raises(ValueError, match="classifier"):
        train_classifier(tiny_net(), to_tensor, images, labels, CLASSES, recipe)


def test_wrong_number_of_logits_is_refused(data):
    images, labels = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5))
    with pytest.raises(ValueError, match="logits"):
        train_classifier(model, to_tensor, images, labels, CLASSES, TrainingRecipe(epochs=1))


def test_split_is_stratified_disjoint_complete_and_seeded():
    labels = [0] * 60 + [1] * 20 + [2] * 3 + [3] * 2 + [4] * 1
    recipe = TrainingRecipe(seed=7)
    splits = split_dataset(labels, recipe)
    assert set(splits) == {"train", "val", "test"}
    all_indices = splits["train"] + splits["val"] + splits["test"]
    assert sorted(all_indices) == list(range(len(labels)))  # complete and disjoint
    counts = {name: Counter(labels[i] for i in idx) for name, idx in splits.items()}
    assert (counts["train"][0], counts["val"][0], counts["test"][0]) == (42, 9, 9)
    assert (counts["train"][1], counts["val"][1], counts["test"][1]) == (14, 3, 3)
    assert (counts["train"][2], counts["val"][2], counts["test"][2]) == (1, 1, 1)
    assert (counts["train"][3], counts["train"][4]) == (2, 1)  # too small to hold out
    assert split_dataset(labels, recipe) == splits
    assert split_dataset(labels, TrainingRecipe(seed=8)) != splits
    no_test = split_dataset(labels, TrainingRecipe(test_fraction=0.0))
    assert no_test["test"] == [] and Counter(labels[i] for i in no_test["val"])[0] == 9


def test_metrics_match_hand_computation():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 0]
    u = [0.1, 0.2, 0.6, 0.1, 0.5, 0.3, 0.2, 0.25]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"], uncertainty=u)
    assert m["n"] == 8
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["per_class_accuracy"] == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 2 / 3, "d": None})
    # p_o = 5/8, p_e = (3*3 + 2*2 + 3*3) / 64 = 22/64 -> kappa = (40/64 - 22/64) / (42/64) = 3/7
    assert m["kappa"] == pytest.approx(3 / 7)
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert m["mean_uncertainty"] == pytest.approx(2.25 / 8)
    # errors have u = 0.6, 0.5, 0.25; correct ones 0.1, 0.2, 0.1, 0.3, 0.2: 14 of 15 pairs ranked right
    assert m["auroc_mispredicted"] == pytest.approx(14 / 15)


def test_metrics_undefined_values_are_none():
    m = classification_metrics([0, 0], [0, 0], ["a", "b"], uncertainty=[0.1, 0.2])
    assert m["accuracy"] == 1.0 and m["kappa"] is None and m["auroc_mispredicted"] is None
    assert m["per_class_accuracy"] == {"a": 1.0, "b": None}
    assert classification_metrics([0, 1], [1, 0], ["a", "b"])["mean_uncertainty"] is None
    empty = classification_metrics([], [], ["a"])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["confusion_matrix"] == [[0]]
    with pytest.raises(ValueError):
        classification_metrics([0, 2], [0, 0], ["a", "b"])


def test_importing_the_module_does_not_import_torch():
    code = "import sys, laion_audit.annotation.classifier_training; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------ recipes per question (paper §2-3)
import math as _math

from laion_audit.annotation.classifier_training import paper_recipe, recipe_for, run_metadata
from laion_audit.annotation.evidential_loss import evidential_mse_loss, kl_annealing_weight
from laion_audit.annotation.training_batches import resample_to_fraction_of_largest


def _logit_for_evidence(e: float) -> float:
    """softplus^-1: the logit whose softplus evidence is exactly ``e``."""
    return _math.log(_math.expm1(e))


def test_evidential_loss_matches_a_hand_computation():
    # Evidence (3, 1, 0) -> alpha (4, 2, 1), S = 7, p = (4/7, 2/7, 1/7) for both examples.
    logits = torch.tensor([[_logit_for_evidence(3.0), _logit_for_evidence(1.0), -60.0]] * 2, dtype=torch.float64)
    targets = torch.tensor([0, 1])
    variance = (4 / 7 * 3 / 7 + 2 / 7 * 5 / 7 + 1 / 7 * 6 / 7) / 8  # sum p(1-p) / (S+1) = 1/14
    # Target 0: squared error (3/7)^2 + (2/7)^2 + (1/7)^2 = 2/7; alpha~ = (1, 2, 1), a Dir with density 6 p2 against
    # the uniform Dir's 2, so KL = E[ln 3 p2] with p2 ~ Beta(2, 2): ln 3 + (psi(2) - psi(4)) = ln 3 - 5/6.
    first = 2 / 7 + variance, _math.log(3) - 5 / 6
    # Target 1: squared error (4/7)^2 + (5/7)^2 + (1/7)^2 = 6/7; alpha~ = (4, 1, 1), density 20 p1^3 against 2,
    # KL = ln 10 + 3 E[ln p1], p1 ~ Beta(4, 2): E[ln p1] = psi(4) - psi(6) = -(1/4 + 1/5).
    second = 6 / 7 + variance, _math.log(10) - 3 * (1 / 4 + 1 / 5)
    for weight in (0.0, 0.5, 1.0):
        expected = ((first[0] + weight * first[1]) + (second[0] + weight * second[1])) / 2
        got = float(evidential_mse_loss(logits, targets, weight))
        assert got == pytest.approx(expected, abs=1e-9), weight
    assert variance == pytest.approx(1 / 14)


def test_kl_weight_is_annealed_linearly_then_held():
    assert [kl_annealing_weight(t, 10) for t in (0, 5, 10, 25)] == [0.0, 0.5, 1.0, 1.0]


def test_resampling_brings_every_class_to_a_quarter_of_the_largest():
    # Class sizes 10, 3, 41, 7 and 10 (class 4): largest 41 -> floor(41 / 4) = 10 per class.
    labels = [0] * 10 + [1] * 3 + [2] * 41 + [3] * 7 + [4] * 10
    train = list(range(len(labels)))
    out = resample_to_fraction_of_largest(labels, train, 4, seed=3)
    counts = Counter(labels[i] for i in out)
    assert counts == {0: 10, 1: 10, 2: 10, 3: 10, 4: 10}
    drawn = {c: [i for i in out if labels[i] == c] for c in counts}
    assert len(set(drawn[2])) == 10  # 41 -> 10: undersampled, no repeats
    assert sorted(drawn[0]) == list(range(10))  # exactly the target: every example once
    assert set(drawn[1]) <= {10, 11, 12} and len(drawn[1]) == 10  # 3 -> 10: with replacement
    assert set(drawn[3]) <= set(range(54, 61))
    assert resample_to_fraction_of_largest(labels, train, 4, seed=3) == out
    # Only the given (training) indices are drawn from; a class absent there stays absent.
    subset = [i for i in train if labels[i] != 4]
    assert 4 not in Counter(labels[i] for i in resample_to_fraction_of_largest(labels, subset, 4, seed=0))


def test_paper_recipes_and_their_deviations():
    gender, race = paper_recipe("gender"), paper_recipe("race")
    assert (gender.loss, gender.lr, gender.min_lr, gender.batch_size, gender.epochs, gender.resample_divisor) == \
        ("cross_entropy", 1e-5, 1e-6, 32, 10, None)
    assert (race.loss, race.lr, race.min_lr, race.kl_anneal_fraction, race.resample_divisor) == \
        ("evidential", 1e-4, 1e-6, 0.1, 4)
    as_paper = recipe_for("race")
    assert not any("instead of the paper's" in d for d in as_paper.deviations)
    assert any("Sensoy" in d for d in as_paper.deviations)  # the loss is a re-implementation
    tiny = recipe_for("race", lr=1e-3, epochs=3, reasons={"lr": "tiny profile"})
    assert "lr 0.001 instead of the paper's 0.0001: tiny profile" in tiny.deviations
    assert "epochs 3 instead of the paper's 10" in tiny.deviations
    assert tiny.as_record()["deviations"] == list(tiny.deviations) and tiny.as_record()["loss"] == "evidential"


def test_run_metadata_records_the_device_and_every_deviation():
    recipe = recipe_for("gender", lr=1e-3, shuffle_window_groups=2)
    cpu = run_metadata(recipe, torch.device("cpu"), False, False, 3, 50)
    assert cpu["device"] == "cpu" and cpu["precision"] == "fp32" and "CPU" in cpu["device_note"]
    assert cpu["recipe"]["lr"] == 1e-3 and cpu["recipe"]["name"] == "paper-gender"
    assert set(recipe.deviations) < set(cpu["deviations"])
    assert any("windows of 2 shards" in d for d in cpu["deviations"])
    gpu = run_metadata(recipe, torch.device("cuda", 0), True, True, 3, 50)
    assert gpu["device"] == "cuda:0" and gpu["precision"] == "bf16-autocast" and "device_note" not in gpu
    assert any("bf16" in d for d in gpu["deviations"])


@pytest.mark.parametrize("question", ["gender", "race"])
def test_each_paper_recipe_learns_the_colour_task(data, question):
    """Both recipes (cross-entropy; evidential + resampling), with a from-scratch lr, on an imbalanced set."""
    images, labels = data
    keep = [i for i, label in enumerate(labels) if label != 2 or i % 3 == 0]  # blue 60 -> 20
    recipe = recipe_for(question, lr=1e-2, min_lr=1e-3, epochs=4, batch_size=16, device="cpu")
    result = train_classifier(tiny_net(), to_tensor, [images[i] for i in keep], [labels[i] for i in keep],
                              CLASSES, recipe)
    assert result.val_metrics["accuracy"] >= 0.8, result.val_metrics
    assert result.test_metrics["accuracy"] >= 0.8, result.test_metrics
    assert result.metadata["device"] == "cpu" and result.metadata["recipe"]["loss"] == recipe.loss
    train_counts = Counter(labels[keep[i]] for i in result.train_indices)
    if question == "race":  # train split 42/42/14 -> floor(42 / 4) = 10 each
        assert train_counts == {0: 10, 1: 10, 2: 10}
        assert 0 < result.val_metrics["mean_uncertainty"] <= 1  # u = K / S
    else:
        assert train_counts == {0: 42, 1: 42, 2: 14}


def test_streamed_batches_do_not_depend_on_the_number_of_workers(data):
    from laion_audit.annotation.training_batches import InMemoryImages, batch_loader, plan_batches

    images, labels = data
    source = InMemoryImages(images[:40], labels[:40])
    plan = plan_batches(source, list(range(40)), 8, seed=5, window_groups=None)
    assert sorted(i for b in plan.batches for i in b) == list(range(40)) and plan.global_shuffle
    serial = [(x.clone(), y.clone()) for x, y in batch_loader(source, plan, to_tensor, workers=0)]
    parallel = list(batch_loader(source, plan, to_tensor, workers=2))
    assert len(serial) == len(parallel) == 5
    for (xa, ya), (xb, yb), batch in zip(serial, parallel, plan.batches):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert ya.tolist() == [labels[i] for i in batch]
        assert torch.equal(xa, torch.stack([to_tensor(images[i]) for i in batch]))
