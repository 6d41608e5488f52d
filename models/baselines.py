r"""Non-causal baselines in the same framework: a β-VAE and a label-conditional VAE.

Both have the encoder, decoder, latent blocks (one per factor, named after it), training loop
and queries of the causal models, but no mechanisms between the blocks: every block is its
own noise, ``z_i = eps_i``. An intervention therefore changes the intervened block only, and
the descendants keep their factual blocks.

* :class:`BetaVAE` (Higgins et al., 2017): no labels in the objective,
  ``-log p(x | z) + beta KL(q(z | x) || N(0, I))``. Its blocks carry no factor by construction,
  so :meth:`BetaVAE.fit_readout` aligns blocks to factors after training (Hungarian matching on
  the R² of a linear read-out of each factor from each block) and fits the linear map from a
  label to its block that interventions use.
* :class:`ConditionalVAE`: the label-conditional prior ``p(z_i | y_i) = N(y_i 1_k, lambda_2^2 I)``
  per factor, with the same weights as SCM-VAE (``alpha = 0.1 / lambda_2^2``, ``beta = 1``,
  ``lambda_2 = 0.1``): SCM-VAE without the causal graph (an iVAE-style conditional prior),
  the ablation that isolates what the mechanisms contribute.
"""

from __future__ import annotations

__all__ = ["BetaVAE", "ConditionalVAE"]

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from pyrocausal.models.crl_base import CRLModel


class ConditionalVAE(CRLModel):
    """Label-conditional VAE: independent blocks with prior ``N(y_i 1_k, lambda_2^2 I)``.

    Arguments: see :class:`~pyrocausal.models.crl_base.CRLModel`; the graph is used for
    naming and evaluation only.
    """

    default_kl_weight = 10.0  # as SCM-VAE: 0.1 / lambda_2^2
    default_supervision_weight = 1.0
    kl_weight_follows_prior_scale = True

    def latent_parents(self, name: str) -> tuple[str, ...]:
        return ()

    def _label_map(self, name: str, latents: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        k = self.latent_dim
        return self.label_loc.new_ones(k), self.label_loc.new_zeros(k)


class BetaVAE(CRLModel):
    """β-VAE with ``n`` independent ``N(0, I)`` blocks; labels are not used in training.

    ``kl_weight`` is β (default 4). Call :meth:`fit_readout` after training before asking
    interventional or counterfactual queries.
    """

    default_kl_weight = 4.0
    default_supervision_weight = 0.0
    supervised = False

    def __init__(self, graph: Any, image_shape: tuple[int, int, int], **kwargs: Any) -> None:
        super().__init__(graph, image_shape, **kwargs)
        n, k = len(self.graph), self.latent_dim
        self.register_buffer("readout_scale", torch.zeros(n, k))
        self.register_buffer("readout_shift", torch.zeros(n, k))
        self.register_buffer("readout_fitted", torch.tensor(False))

    def latent_parents(self, name: str) -> tuple[str, ...]:
        return ()

    def _label_map(self, name: str, latents: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        if not bool(self.readout_fitted):
            raise RuntimeError(
                "a β-VAE's blocks carry no factor until fit_readout(images, labels) aligns them"
            )
        i = self.graph.nodes.index(name)
        return self.readout_scale[i], self.readout_shift[i]

    @torch.no_grad()
    def fit_readout(self, images: Tensor, labels: Tensor, batch_size: int = 256) -> np.ndarray:
        """Align blocks to factors and fit each factor's label-to-block map.

        Arguments:
            images: Training images ``(N, C, H, W)``.
            labels: Their normalized codes ``(N, n)`` in ``factor_names`` order.
            batch_size: Images per encoder pass.

        Returns:
            The R² matrix ``(blocks, factors)`` (factors in the graph's order) that the
            matching maximized.
        """
        self.block_order.copy_(torch.arange(len(self.graph), device=self.device))
        parts = [self.encode(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        nodes = self.graph.nodes
        blocks = [torch.cat([p[name] for p in parts]).double().cpu() for name in nodes]
        y = labels.double().cpu()[:, [self._column[name] for name in nodes]]
        r2 = np.zeros((len(nodes), len(nodes)))
        for j, z in enumerate(blocks):
            design = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
            for f in range(len(nodes)):
                coef = torch.linalg.lstsq(design, y[:, f : f + 1]).solution
                residual = y[:, f : f + 1] - design @ coef
                r2[j, f] = 1.0 - float(residual.var() / y[:, f].var().clamp_min(1e-12))
        rows, cols = linear_sum_assignment(r2, maximize=True)
        order = torch.empty(len(nodes), dtype=torch.long)
        order[torch.as_tensor(rows)] = torch.as_tensor(cols)
        self.block_order.copy_(order.to(self.device))
        for j, f in zip(rows, cols, strict=True):
            z, code = blocks[j], y[:, f]
            design = torch.stack([code, torch.ones_like(code)], dim=1)
            coef = torch.linalg.lstsq(design, z).solution  # (2, k)
            self.readout_scale[f] = coef[0].to(self.readout_scale)
            self.readout_shift[f] = coef[1].to(self.readout_shift)
        self.readout_fitted.fill_(True)
        return r2
