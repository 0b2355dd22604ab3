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
