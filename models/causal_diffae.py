r"""CausalDiffAE: a diffusion autoencoder whose semantic latent is a structural causal model.

Komanduri et al., "Causal Diffusion Autoencoders: Toward Counterfactual Generation via
Diffusion Probabilistic Models", ECAI 2024. With a known DAG over ``n`` factors and a
``k``-dimensional block per factor, the Pyro program is

.. code-block:: text

    for each factor i (topological order):
        u_i ~ N(0, I_k)                                  site "<factor>_base"  (weight w(step))
        z_i = f_i(z_pa(i)) + u_i                         site "<factor>"       (deterministic)
        [label given] factor  -w(step) KL(N(z_i, I) || N(y_i 1_k, lambda^2 I))
    t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps
    factor "image": -|| eps - eps_theta(x_t, t, c) ||^2,  c = z, or the learned null
                    condition with probability p_uncond

* the guide is a semantic encoder ``q(u | x)`` (abduction of the exogenous blocks; by
  default through ``q(z | x)`` and the exact inverse mechanisms ``u_i = z_i - f_i(z_pa(i))``,
  ``abduction="latent"`` of :class:`~pyrocausal.models.crl_base.CRLModel`);
* the mechanisms read the **parents' z** (the paper; the reference code feeds the parents'
  u in one pass, so effects two hops away never propagate);
* the decoder is a conditional noise predictor: a ``diffusers`` :class:`UNet2DModel` whose
  class-embedding input receives ``Linear(z)``, added to the time embedding as DiffAE does,
  with ``DDIMScheduler`` / ``DDIMInverseScheduler`` built from this model's config (never
  downloaded; linear beta schedule, ``T = 1000``, epsilon prediction);
* objective (negative ELBO per image): the epsilon-prediction loss summed over pixels plus
  the weighted KL terms ``w(step) [KL(q(u | x) || N(0, I)) + sum_i KL(N(z_i, I) || N(y_i 1,
  lambda^2 I))]``, with ``w`` ramped linearly over the first ``warmup_fraction`` of the
  epochs, starting above zero (METHODS.md §1.3: ramped 0 -> 1). ``lambda = 0.1``: the
  paper's 1 halves the latents (see :class:`CausalDiffAE`);
* weak supervision in the style of classifier-free guidance: units without labels (``NaN``
  codes) have no supervision term; during training each unit's condition is replaced by a
  learned null condition with probability ``p_uncond``; queries use
  ``eps_hat = w eps_theta(x_t, t, z) + (1 - w) eps_theta(x_t, t, null)`` with ``w`` a
  parameter of the query (``w = 0``: the unconditional model; ``w = 1``: the conditional);
* counterfactuals: encode ``x -> u`` (abduction), DDIM-*invert* ``x`` to ``x_T`` under the
  factual ``z`` (deterministic, ``eta = 0``; the reference code noised ``x`` forward
  instead), :func:`pyro.do` on the factor sites, descendants recomputed by the mechanisms
  from their own abducted ``u`` (the reference Pendulum code overwrote ``z`` after the
  mechanisms), DDIM decoding of ``x_T`` under the counterfactual ``z``, with
  ``num_inference_steps`` respaced steps. :meth:`CausalDiffAE.traversal` sets a block
  without propagation and is named so.

Intervention values are in the factors' own units, as for every
:class:`~pyrocausal.models.crl_base.CRLModel`: the intervened block becomes ``v 1 + r``, its
label code ``v`` plus the unit's abducted residual ``r = z - mean(z) 1``.

:class:`DiffAE` is the ablation: the same networks and objective without mechanisms
(``z_i = u_i``), so an intervened block changes alone.

``diffusers`` is an optional dependency (``pip install pyrocausal[diffusion]``); this module
imports without it and the constructor says what to install.

Example:
    >>> import torch
    >>> from pyrocausal.models.causal_diffae import CausalDiffAE
    >>> model = CausalDiffAE({"a": [], "b": ["a"]}, (1, 8, 8), latent_dim=2,
    ...                      unet_channels=(8, 8), num_inference_steps=2)
    >>> out = model.counterfactual(torch.rand(3, 1, 8, 8), {"a": 0.5}, w=1.0)
    >>> out.images.shape, out.latents["b"].shape
    (torch.Size([3, 1, 8, 8]), torch.Size([3, 2]))
"""

from __future__ import annotations

__all__ = ["CausalDiffAE", "DiffAE", "SemanticEncoder", "semantic_encoder_networks"]

from collections.abc import Mapping, Sequence
from typing import Any

import pyro
import torch
from torch import Tensor, nn
from torch.distributions import AffineTransform
from torch.nn import functional as F

from pyrocausal.inference.svi import LinearWarmup
from pyrocausal.models.crl_base import CRLModel, CRLQuery, _batch_size

_MIN_SCALE = 1e-4
_INSTALL_HINT = (
    "CausalDiffAE needs the `diffusers` package for its UNet and DDIM schedulers: "
    "pip install 'pyrocausal[diffusion]' (or pip install diffusers)"
)


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(_INSTALL_HINT) from error
    return diffusers


class SemanticEncoder(nn.Module):
    """DiffAE's semantic encoder: 3x3 stride-2 convolutions, GroupNorm, LeakyReLU, then the
    location and softplus scale of the code.

    GroupNorm replaces the reference's BatchNorm: abduction then does not depend on the
    batch it is run with, or on train/eval mode (a unit's counterfactual must not change
    with its neighbours in the batch).
    """

    def __init__(
        self, image_shape: Sequence[int], out_features: int, channels: Sequence[int] = (32, 64, 128)
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        layers: list[nn.Module] = []
        for out in channels:
            groups = 8 if out % 8 == 0 else 1
            layers += [
                nn.Conv2d(c, out, kernel_size=3, stride=2, padding=1),
                nn.GroupNorm(groups, out),
                nn.LeakyReLU(0.2),
            ]
            c, h, w = out, (h + 1) // 2, (w + 1) // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * h * w, 2 * out_features)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        loc, raw = self.head(self.features(images)).chunk(2, dim=-1)
        return loc, F.softplus(raw) + _MIN_SCALE


def semantic_encoder_networks(
    image_shape: tuple[int, int, int], n_blocks: int, block_features: int
) -> tuple[nn.Module, nn.Module]:
    """Network factory of :class:`CausalDiffAE`: the semantic encoder and a placeholder
    decoder (the model replaces it by its diffusion decoder)."""
    return SemanticEncoder(image_shape, n_blocks * block_features), nn.Identity()


class _NoiseDecoder(nn.Module):
    """``eps_theta(x_t, t, c)``: a ``diffusers`` UNet whose class embedding is ``c``.

    ``c`` is ``Linear(z)`` (in the time embedding's space), or the learned null condition.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        code_features: int,
        channels: Sequence[int],
        layers_per_block: int,
        attention: bool,
    ) -> None:
        super().__init__()
        diffusers = _diffusers()
        c, h, w = image_shape
        # At least four channels per GroupNorm group: with one channel per group (diffusers'
        # default 32 groups on 32 channels) the norm removes any per-channel shift that the
        # time and class embeddings add, and the condition had no effect (measured: output
        # change 0.002 for a condition 100 times its scale).
        groups = max(1, min(32, min(int(ch) for ch in channels) // 4))
        while any(int(ch) % groups for ch in channels):
            groups -= 1
        down = ["AttnDownBlock2D" if attention else "DownBlock2D"] * len(channels)
        up = ["AttnUpBlock2D" if attention else "UpBlock2D"] * len(channels)
        self.unet = diffusers.UNet2DModel(
            sample_size=(h, w),
            in_channels=c,
            out_channels=c,
            block_out_channels=tuple(int(ch) for ch in channels),
            layers_per_block=int(layers_per_block),
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=groups,
            class_embed_type="identity",
            # DiffAE's adaptive group norm: the embedding scales and shifts each block's
            # normalized features.
            resnet_time_scale_shift="scale_shift",
        )
        embed = 4 * int(channels[0])  # UNet2DModel's time embedding width
        self.project = nn.Linear(code_features, embed)
        self.null = nn.Parameter(torch.zeros(embed))

    def condition(self, code: Tensor) -> Tensor:
        return self.project(code)

    def forward(self, x_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        return self.unet(x_t, t, class_labels=condition).sample


class CausalDiffAE(CRLModel):
    """CausalDiffAE (see the module docstring).

    Arguments:
        graph: Causal graph over the factors.
        image_shape: ``(C, H, W)``; ``H`` and ``W`` divisible by ``2^(len(unet_channels)-1)``.
        hidden_features: Width of each child's mechanism MLP ``f_i``.
        unet_channels: ``block_out_channels`` of the UNet, one per resolution. Default
            ``(32, 64, 64)`` with one residual block per level and no attention: about 1M
            parameters, Diff-SCM's CPU size. The reference code's is ``(128, 256, 256)``,
            3 blocks, attention (about 35M parameters).
        layers_per_block: Residual blocks per level.
        attention: Self-attention in every block (the reference's full-resolution
            attention; off by default on CPU).
        encoder_channels: Channels of the semantic encoder's convolutions.
        num_train_timesteps: ``T`` of the linear beta schedule (``beta`` from ``beta_start``
            to ``beta_end``).
        beta_start, beta_end: The linear schedule's ends (DDPM's 1e-4 and 0.02).
        p_uncond: Probability that a training unit's condition is the null condition.
        guidance: Default ``w`` of the queries (1: the conditional model).
        num_inference_steps: Default number of respaced DDIM steps of the queries.
        warmup_fraction: Fraction of the epochs over which the KL weights ramp up.
        **kwargs: See :class:`~pyrocausal.models.crl_base.CRLModel`: ``latent_dim`` ``k``,
            ``kl_weight`` (default 1, the paper's), ``supervision_weight`` (1),
            ``prior_scale`` ``lambda`` (default 0.1, as the VAEs'; see below), ``abduction``
            (default ``"latent"``).

    The paper's unit-variance supervision ``KL(N(z_i, I) || N(y_i 1, I))`` at the same
    weight as ``KL(q(u | x) || N(0, I))`` has its optimum at half the label for a root
    (``mu = y / (1 + alpha lambda^2)``): the latents are shrunk, the model reads a unit's
    thickness at half its scale, and an intervention at a value ``v`` moves the block twice
    as far as the data do. Measured on Morpho (3,000 images, 6 epochs, lambda = 1): slope of
    the model's thickness reading against the true code 0.49 (intensity 0.76), and
    counterfactuals that overshoot (oracle MAE of the intervened thickness 0.51 pixels,
    0.79 for no change at all; ICM-VAE 0.12). ``lambda = 0.1`` puts the optimum at
    ``0.99 y``.
    """

    default_kl_weight = 1.0
    default_supervision_weight = 1.0
    default_prior_scale = 0.1
    default_abduction = "latent"
    #: Whether the factors' blocks are linked by mechanisms (``False``: :class:`DiffAE`).
    causal: bool = True

    def __init__(
        self,
        graph: Any,
        image_shape: tuple[int, int, int],
        *,
        hidden_features: int = 32,
        unet_channels: Sequence[int] = (32, 64, 64),
        layers_per_block: int = 1,
        attention: bool = False,
        encoder_channels: Sequence[int] = (32, 64, 128),
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        p_uncond: float = 0.1,
        guidance: float = 1.0,
        num_inference_steps: int = 20,
        warmup_fraction: float = 0.25,
        networks: str = "pyrocausal.models.causal_diffae:semantic_encoder_networks",
        **kwargs: Any,
    ) -> None:
        _diffusers()
        if networks != "pyrocausal.models.causal_diffae:semantic_encoder_networks":
            raise ValueError(
                f"CausalDiffAE builds its own networks; got networks={networks!r} (leave it out)"
            )
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {p_uncond}")
        if num_inference_steps < 1 or num_inference_steps > num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be in [1, {num_train_timesteps}], got "
                f"{num_inference_steps}"
            )
        super().__init__(graph, image_shape, networks=networks, **kwargs)
        k = self.latent_dim
        n = len(self.factor_names)
        self.encoder = SemanticEncoder(self.image_shape, n * k, encoder_channels)
        self.decoder = _NoiseDecoder(
            self.image_shape, n * k, unet_channels, layers_per_block, attention
        )
        self.mechanisms = nn.ModuleDict(
            {
                name: nn.Sequential(
                    nn.Linear(k * len(self.latent_parents(name)), hidden_features),
                    nn.ELU(),
                    nn.Linear(hidden_features, k),
                )
                for name in self.graph.nodes
                if self.latent_parents(name)
            }
        )
        diffusers = _diffusers()
        schedule = {
            "num_train_timesteps": int(num_train_timesteps),
            "beta_start": float(beta_start),
            "beta_end": float(beta_end),
            "beta_schedule": "linear",
            "prediction_type": "epsilon",
            "clip_sample": False,  # clipping x_0 would make DDIM non-invertible
            "set_alpha_to_one": True,  # the last step lands on x_0; inversion starts there
            "steps_offset": 0,
            "timestep_spacing": "leading",
        }
        self.scheduler = diffusers.DDIMScheduler(**schedule)
        self.inverse_scheduler = diffusers.DDIMInverseScheduler(**schedule)
        self.p_uncond = float(p_uncond)
        self.guidance = float(guidance)
        self.num_inference_steps = int(num_inference_steps)
        self.warmup_fraction = float(warmup_fraction)
        self._config.update(
            hidden_features=int(hidden_features),
            unet_channels=[int(c) for c in unet_channels],
            layers_per_block=int(layers_per_block),
            attention=bool(attention),
            encoder_channels=[int(c) for c in encoder_channels],
            num_train_timesteps=int(num_train_timesteps),
            beta_start=float(beta_start),
            beta_end=float(beta_end),
            p_uncond=self.p_uncond,
            guidance=self.guidance,
            num_inference_steps=self.num_inference_steps,
            warmup_fraction=self.warmup_fraction,
        )

    # ------------------------------------------------------------------ structure
    def default_schedules(self, epochs: int) -> dict[str, Any]:
        warmup = max(1, round(self.warmup_fraction * epochs))
        return {
            "kl_weight": LinearWarmup(self.kl_weight, warmup),
            "supervision_weight": LinearWarmup(self.supervision_weight, warmup),
        }

    def _context(self, name: str, latents: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([latents[p] for p in self.latent_parents(name)], dim=-1)

    def _mechanism(
        self, name: str, noise: Tensor, parents: Mapping[str, Tensor]
    ) -> tuple[Tensor, None]:
        if not parents:
            return noise, None
        return self.mechanisms[name](self._context(name, parents)) + noise, None

    def _noise_transform(self, name: str, parents: Mapping[str, Tensor]) -> Any:
        if not parents:
            return None
        shift = self.mechanisms[name](self._context(name, parents))
        return AffineTransform(-shift, 1.0, event_dim=1)

    def _label_map(self, name: str, latents: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        k = self.latent_dim
        return self.label_loc.new_ones(k), self.label_loc.new_zeros(k)

    # ------------------------------------------------------------------ noise predictor
    def eps(
        self, x_t: Tensor, t: Tensor | int, code: Tensor | None, w: float | None = None
    ) -> Tensor:
        """The guided noise prediction ``w eps(x_t, t, z) + (1 - w) eps(x_t, t, null)``.

        Arguments:
            x_t: Noisy images in the model's ``[-1, 1]`` scale, ``(N, C, H, W)``.
            t: Diffusion time step(s) (``0 .. T-1``).
            code: The concatenated latent blocks ``(N, n k)`` (block order
                :attr:`block_names`), or ``None`` for the null condition.
            w: Guidance weight (default :attr:`guidance`). ``w = 0`` evaluates the
                unconditional model only, ``w = 1`` the conditional one only.
        """
        w = self.guidance if w is None else float(w)
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(n)
        null = self.decoder.null.expand(n, -1)
        if code is None or w == 0.0:
            return self.decoder(x_t, t, null)
        cond = self.decoder.condition(code)
        if w == 1.0:
            return self.decoder(x_t, t, cond)
        both = self.decoder(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null]))
        conditional, unconditional = both.chunk(2)
        return w * conditional + (1.0 - w) * unconditional

    # ------------------------------------------------------------------ Pyro program
    def model(
        self,
        images: Tensor | None = None,
        labels: Tensor | None = None,
        *,
        batch_size: int | None = None,
        kl_weight: float | None = None,
        supervision_weight: float | None = None,
    ) -> CRLQuery:
        """The generative program (see the module docstring).

        With ``images``, the factor ``"image"`` is minus the epsilon-prediction loss of one
        random ``(t, eps)`` per image (the denoising bound of ``log p(x | z)`` up to
        constants and weights); in training mode each unit's condition is dropped to the
        null condition with probability ``p_uncond``. Without images, the program samples
        images by DDIM from ``x_T ~ N(0, I)`` at the default guidance and step count.
        """
        n = _batch_size(images, labels, batch_size)
        alpha, beta = self._weights(kl_weight, supervision_weight)
        with pyro.plate("data", n, dim=-1):
            latents = self._latent_program(labels, alpha, beta)
            code = self._code(latents)
            if images is None:
                x_t = torch.randn(n, *self.image_shape, device=self.device)
                return CRLQuery(self._decode(x_t, code, None, None), latents)
            x0 = self._to_model_scale(images)
            t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), device=x0.device)
            noise = torch.randn_like(x0)
            x_t = self.scheduler.add_noise(x0, noise, t)
            cond = self.decoder.condition(code)
            if self.training and self.p_uncond > 0:
                drop = torch.rand(n, device=x0.device) < self.p_uncond
                cond = torch.where(drop[:, None], self.decoder.null.expand(n, -1), cond)
            eps_hat = self.decoder(x_t, t, cond)
            pyro.factor("image", -(noise - eps_hat).pow(2).flatten(1).sum(-1))
        return CRLQuery(images, latents)

    # ------------------------------------------------------------------ DDIM
    @staticmethod
    def _to_model_scale(images: Tensor) -> Tensor:
        if images.dtype == torch.uint8:
            images = images.to(torch.float32) / 255.0
        return images * 2.0 - 1.0

    def _steps(self, num_inference_steps: int | None) -> int:
        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        steps = int(steps)
        if not 1 <= steps <= self.scheduler.config.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be positive, got {steps}")
        return steps

    @torch.no_grad()
    def invert(
        self,
        images: Tensor,
        latents: Mapping[str, Tensor],
        *,
        w: float | None = None,
        num_inference_steps: int | None = None,
    ) -> Tensor:
        """Deterministic DDIM inversion (``eta = 0``) of ``images`` to ``x_T`` under the
        latent blocks ``latents`` (``DDIMInverseScheduler``, the mirror of :meth:`decode`'s
        time steps)."""
        steps = self._steps(num_inference_steps)
        x = self._to_model_scale(images.to(self.device))
        code = self._code(latents)
        self.inverse_scheduler.set_timesteps(steps)
        for t in self.inverse_scheduler.timesteps:
            eps = self.eps(x, int(t), code, w)
            x = self.inverse_scheduler.step(eps, int(t), x).prev_sample
        return x

    @torch.no_grad()
    def decode(
        self,
        x_T: Tensor,
        latents: Mapping[str, Tensor] | None,
        *,
        w: float | None = None,
        num_inference_steps: int | None = None,
    ) -> Tensor:
        """DDIM decoding (``eta = 0``) of ``x_T`` under ``latents`` (``None``: the null
        condition); pixel values in ``[0, 1]``."""
        code = None if latents is None else self._code(latents)
        return self._decode(x_T, code, w, num_inference_steps)

    def _decode(
        self, x: Tensor, code: Tensor | None, w: float | None, num_inference_steps: int | None
    ) -> Tensor:
        steps = self._steps(num_inference_steps)
        self.scheduler.set_timesteps(steps)
        with torch.no_grad():
            for t in self.scheduler.timesteps:
                eps = self.eps(x, int(t), code, w)
                x = self.scheduler.step(eps, int(t), x, eta=0.0).prev_sample
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    # ------------------------------------------------------------------ queries
    @torch.no_grad()
    def counterfactual(
        self,
        images: Tensor,
        intervention: Mapping[str, Any],
        *,
        w: float | None = None,
        num_inference_steps: int | None = None,
    ) -> CRLQuery:
        """Counterfactual images of ``images`` under ``do(intervention)`` (own units).

        Abduction (the guide's ``u``), DDIM inversion of the images under the factual ``z``,
        :func:`pyro.do` on the factor sites with the descendants recomputed from their own
        ``u``, and DDIM decoding under the counterfactual ``z``, both with guidance ``w``
        and ``num_inference_steps`` respaced steps (defaults: :attr:`guidance`,
        :attr:`num_inference_steps`).
        """
        images = images.to(self.device)
        noise = self.abduct(images)
        factual = self._latents(noise, {})
        acted = self._intervention_latents(
            noise, self._codes(intervention, images.shape[0]), factual
        )
        world = self._latents(noise, acted) if acted else factual
        x_T = self.invert(images, factual, w=w, num_inference_steps=num_inference_steps)
        return CRLQuery(
            self.decode(x_T, world, w=w, num_inference_steps=num_inference_steps), world
        )

    @torch.no_grad()
    def reconstruct(
        self, images: Tensor, *, w: float | None = None, num_inference_steps: int | None = None
    ) -> CRLQuery:
        """Abduction, inversion and decoding without intervention."""
        return self.counterfactual(images, {}, w=w, num_inference_steps=num_inference_steps)

    @torch.no_grad()
    def traversal(
        self,
        images: Tensor,
        values: Mapping[str, Any],
        *,
        w: float | None = None,
        num_inference_steps: int | None = None,
    ) -> CRLQuery:
        """Set blocks as :meth:`counterfactual` would, *without* recomputing descendants
        (a latent traversal, not a counterfactual), then decode from the inverted ``x_T``."""
        images = images.to(self.device)
        noise = self.abduct(images)
        factual = self._latents(noise, {})
        latents = dict(factual)
        for name, code in self._codes(values, images.shape[0]).items():
            latents[name] = self._block(name, code, factual, factual)
        x_T = self.invert(images, factual, w=w, num_inference_steps=num_inference_steps)
        return CRLQuery(
            self.decode(x_T, latents, w=w, num_inference_steps=num_inference_steps), latents
        )

    @torch.no_grad()
    def do(
        self,
        intervention: Mapping[str, Any],
        num_samples: int = 1,
        *,
        w: float | None = None,
        num_inference_steps: int | None = None,
    ) -> CRLQuery:
        """Sample images under ``do(intervention)``: ``u`` from its prior, the intervened
        blocks at their label values through :func:`pyro.do`, descendants by the
        mechanisms, and DDIM decoding of ``x_T ~ N(0, I)``."""
        from pyro import poutine

        from pyrocausal.inference.counterfactual import noise_site

        with poutine.block():
            trace = poutine.trace(self.latent_model).get_trace(num_samples)
        noise = {name: trace.nodes[noise_site(name)]["value"] for name in self.graph.nodes}
        acted = self._intervention_latents(noise, self._codes(intervention, num_samples), None)
        latents = self._latents(noise, acted)
        x_T = torch.randn(num_samples, *self.image_shape, device=self.device)
        return CRLQuery(
            self.decode(x_T, latents, w=w, num_inference_steps=num_inference_steps), latents
        )

    @torch.no_grad()
    def sample(
        self,
        num_samples: int = 1,
        *,
        w: float | None = None,
        num_inference_steps: int | None = None,
    ) -> CRLQuery:
        """Observational samples: :meth:`do` with no intervention."""
        return self.do({}, num_samples, w=w, num_inference_steps=num_inference_steps)

    def _predict(self, noise: Mapping[str, Tensor], acted: Mapping[str, Tensor]) -> CRLQuery:
        latents = self._latents(noise, acted)
        n = next(iter(latents.values())).shape[0]
        x_T = torch.randn(n, *self.image_shape, device=self.device)
        return CRLQuery(self.decode(x_T, latents), latents)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, p_uncond={self.p_uncond}, guidance={self.guidance}, "
            f"num_inference_steps={self.num_inference_steps}"
        )


class DiffAE(CausalDiffAE):
    """The ablation of :class:`CausalDiffAE`: the same networks and objective, no causal
    mechanisms (``z_i = u_i``), so an intervention changes the intervened block alone."""

    causal = False

    def latent_parents(self, name: str) -> tuple[str, ...]:
        return ()
