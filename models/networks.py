"""Encoders and decoders for causal representation learning on images.

Two families, both swappable through the models' ``networks`` argument:

- ``"conv"`` (the default): a small strided-convolution encoder and a mirrored
  transposed-convolution decoder (about 1.3M parameters at 96x96x4). Images of 64 pixels
  or more are average-pooled 2x on the way in and the logits upsampled 2x (bilinear) on the
  way out, which makes a step about 4x cheaper; Pendulum and Flow shapes are several pixels
  wide at 48x48, so nothing the factors control is lost. One epoch of Pendulum (5,482
  images) takes about 15 s on one CPU thread.
- ``"paper-mlp"``: the MLPs of the SCM-VAE / ICM-VAE papers: an encoder
  ``flatten -> 900 -> 300 -> 2 n k`` and one decoder MLP per factor block
  ``k -> 300 -> 300 -> 1024 -> C H W`` whose logits are averaged (about 190M parameters
  at 96x96x4, minutes per epoch on a CPU).

A network factory is any callable ``factory(image_shape, n_blocks, block_features) ->
(encoder, decoder)``. Encoders map images ``(N, C, H, W)`` to the location and scale of the
exogenous noise, each ``(N, n_blocks * block_features)``; decoders map latents
``(N, n_blocks * block_features)`` to pixel logits ``(N, C, H, W)``.
"""

from __future__ import annotations

__all__ = [
    "NETWORK_PRESETS",
    "BlockMLPDecoder",
    "ConvDecoder",
    "ConvEncoder",
    "MLPEncoder",
    "conv_networks",
    "count_parameters",
    "paper_mlp_networks",
    "resolve_networks",
]

import importlib
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

NetworkFactory = Callable[[tuple[int, int, int], int, int], tuple[nn.Module, nn.Module]]

_MIN_SCALE = 1e-4


class ConvEncoder(nn.Module):
    """Strided 4x4 convolutions (stride 2) then an MLP head giving ``(loc, scale)``.

    Arguments:
        image_shape: ``(C, H, W)`` of the input images.
        out_features: Size of the code (``n_blocks * block_features``).
        channels: Output channels of each stride-2 convolution; each halves H and W.
        hidden_features: Width of the hidden layer of the head.
        pool: Average-pool the input by this factor first (1: full resolution).
        activation: Activation constructor.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (16, 32, 64),
        hidden_features: int = 256,
        pool: int = 1,
        activation: Callable[[], nn.Module] = nn.ELU,
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        h, w = h // pool, w // pool
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        for out in channels:
            layers += [nn.Conv2d(c, out, kernel_size=4, stride=2, padding=1), activation()]
            c = out
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(c * h * w, hidden_features),
            activation(),
            nn.Linear(hidden_features, 2 * out_features),
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.head(self.features(images)).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + _MIN_SCALE


class ConvDecoder(nn.Module):
    """An MLP stem then 4x4 transposed convolutions (stride 2) giving pixel logits.

    The stem produces a ``ceil(H / (u 2^L)) x ceil(W / (u 2^L))`` feature map for ``L``
    upsampling layers and a final bilinear upsampling by ``u = upsample``; the output is
    cropped to ``(H, W)``, so any image size works.
    """

    def __init__(
        self,
        in_features: int,
        image_shape: Sequence[int],
        channels: Sequence[int] = (64, 32, 16),
        hidden_features: int = 256,
        upsample: int = 1,
        activation: Callable[[], nn.Module] = nn.ELU,
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        self.image_shape = (c, h, w)
        self.upsample = upsample
        scale = 2 ** len(channels) * upsample
        self.stem_shape = (channels[0], math.ceil(h / scale), math.ceil(w / scale))
        self.stem = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            activation(),
            nn.Linear(hidden_features, math.prod(self.stem_shape)),
            activation(),
        )
        layers: list[nn.Module] = []
        outs = list(channels[1:]) + [c]
        for i, (cin, cout) in enumerate(zip(channels, outs, strict=True)):
            layers.append(nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1))
            if i < len(channels) - 1:
                layers.append(activation())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        x = self.stem(z.reshape(-1, z.shape[-1])).reshape(-1, *self.stem_shape)
        x = self.deconv(x)
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        c, h, w = self.image_shape
        top = (x.shape[-2] - h) // 2
        left = (x.shape[-1] - w) // 2
        x = x[..., top : top + h, left : left + w]
        return x.reshape(*batch, c, h, w)


class MLPEncoder(nn.Module):
    """The papers' encoder: flatten, ``hidden_features`` ELU layers, ``(loc, softplus scale)``."""

    def __init__(
        self,
        image_shape: Sequence[int],
        out_features: int,
        hidden_features: Sequence[int] = (900, 300),
        activation: Callable[[], nn.Module] = nn.ELU,
    ) -> None:
        super().__init__()
        sizes = [math.prod(image_shape), *hidden_features]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), activation()]
        layers.append(nn.Linear(sizes[-1], 2 * out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(images).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + _MIN_SCALE


class BlockMLPDecoder(nn.Module):
    """The papers' decoder: one MLP per latent block; the blocks' pixel logits are averaged."""

    def __init__(
        self,
        n_blocks: int,
        block_features: int,
        image_shape: Sequence[int],
        hidden_features: Sequence[int] = (300, 300, 1024),
        activation: Callable[[], nn.Module] = nn.ELU,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.block_features = block_features
        sizes = [block_features, *hidden_features, math.prod(self.image_shape)]
        self.blocks = nn.ModuleList()
        for _ in range(n_blocks):
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                layers.append(nn.Linear(a, b))
                if i < len(sizes) - 2:
                    layers.append(activation())
            self.blocks.append(nn.Sequential(*layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        parts = z.split(self.block_features, dim=-1)
        logits = torch.stack([net(p) for net, p in zip(self.blocks, parts, strict=True)]).mean(0)
        return logits.reshape(*z.shape[:-1], *self.image_shape)


def conv_networks(
    image_shape: Sequence[int], n_blocks: int, block_features: int
) -> tuple[nn.Module, nn.Module]:
    """The default small convolutional encoder and decoder (2x pooled at 64 pixels or more)."""
    features = n_blocks * block_features
    factor = 2 if min(image_shape[1:]) >= 64 else 1
    encoder = ConvEncoder(image_shape, features, pool=factor)
    return encoder, ConvDecoder(features, image_shape, upsample=factor)


def paper_mlp_networks(
    image_shape: Sequence[int], n_blocks: int, block_features: int
) -> tuple[nn.Module, nn.Module]:
    """The SCM-VAE / ICM-VAE papers' MLP encoder and per-block MLP decoder."""
    encoder = MLPEncoder(image_shape, n_blocks * block_features)
    return encoder, BlockMLPDecoder(n_blocks, block_features, image_shape)


NETWORK_PRESETS: dict[str, NetworkFactory] = {
    "conv": conv_networks,
    "paper-mlp": paper_mlp_networks,
}


def resolve_networks(networks: str | NetworkFactory) -> NetworkFactory:
    """The network factory ``networks`` names, or ``networks`` itself when it is callable.

    A name is a preset (:data:`NETWORK_PRESETS`) or an import path ``"package.module:function"``
    (so that a model built with a custom factory can still be saved and loaded by name).

    Example:
        >>> resolve_networks("conv") is conv_networks
        True
        >>> resolve_networks("pyrocausal.models.networks:paper_mlp_networks").__name__
        'paper_mlp_networks'
    """
    if callable(networks):
        return networks
    if networks in NETWORK_PRESETS:
        return NETWORK_PRESETS[networks]
    if isinstance(networks, str) and ":" in networks:
        module, _, name = networks.partition(":")
        factory = getattr(importlib.import_module(module), name, None)
        if callable(factory):
            return factory
    raise ValueError(
        f"unknown network preset {networks!r}; choose one of {sorted(NETWORK_PRESETS)}, an "
        "import path 'module:function', or pass a factory "
        "(image_shape, n_blocks, block_features) -> (encoder, decoder)"
    )


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
