"""The models compare trains, registered by name: logistic regression, an MLP, a small CNN."""

from __future__ import annotations

import math

from torch import nn

from hardmine.registry import Registered, Registry

MODELS = Registry("model")
"""Model builders by name: `MODELS["mlp"].build(input_shape, num_classes, hidden) -> nn.Module`; register one by
subclassing `ModelBuilder` with a class attribute `name = "..."`."""


class ModelBuilder(Registered):
    """A named classifier: a subclass sets `name` and writes `build(input_shape, num_classes, hidden)`."""

    registry = MODELS

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
        """A classifier from inputs of `input_shape` (no batch dimension) to `num_classes` logits."""
        raise NotImplementedError


class LogReg(ModelBuilder):
    """Logistic regression."""

    name = "logreg"

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
        """Flatten -> Linear(D, C)."""
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


class MLP(ModelBuilder):
    """A one-hidden-layer perceptron."""

    name = "mlp"

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
        """Flatten -> Linear(D, hidden) -> ReLU -> Linear(hidden, C)."""
        features = math.prod(input_shape)
        return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class CNN(ModelBuilder):
    """A small convolutional network for images."""

    name = "cnn"

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
        """For images [C_in, H, W]: two 3x3 convolutions (16 and 32 channels) with ReLU and 2x2 max-pooling, then
        Linear(32 * (H // 4) * (W // 4), C)."""
        if len(input_shape) != 3 or input_shape[1] < 4 or input_shape[2] < 4:
            raise ValueError(f"model 'cnn' needs images [channels, height, width] of at least 4x4, got samples of "
                             f"shape {tuple(input_shape)}; use 'mlp' or 'logreg' for vectors")
        channels, height, width = input_shape
        return nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), num_classes),
        )


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, hidden: int = 256) -> nn.Module:
    """A classifier from inputs of `input_shape` (without the batch dimension) to `num_classes` logits, built by
    the registered builder `name`. Weights come from torch's global generator: seed it first."""
    if hidden < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden}")
    return MODELS.lookup(name).build(input_shape, num_classes, hidden)
