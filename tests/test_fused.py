"""Stacks trained as one: the fused stack is the same model and trains to the same weights."""

import pytest
import torch

import pyrocausal as pc
from pyrocausal.datasets import random_scm
from pyrocausal.fused import fuse_stacks

PARENTS = [[], [0], [0, 1], [1, 2], [2]]


def _pair(hidden=(8, 8)):
    torch.manual_seed(0)
    maf = pc.MAF(hidden_features=hidden).build(PARENTS[:3], num_features=5)
    shaped_spec = pc.LocationScale(hidden_features=hidden, noise_shape="sinh-arcsinh")
    shaped = shaped_spec.build(PARENTS[3:], num_features=5)
    x = torch.randn(200, 5)
    maf.initialize(x, torch.arange(3))
    shaped.initialize(x, torch.arange(3, 5))
    with torch.no_grad():  # off the identity start, noise shapes included
        for p in [*maf.parameters(), *shaped.parameters()]:
            p.add_(0.1 * torch.randn_like(p))
    groups = [(maf.spec, ["a", "b", "c"]), (shaped_spec, ["d", "e"])]
    return maf, shaped, groups, x


def test_a_fused_stack_is_the_same_model():
    maf, shaped, groups, x = _pair()
    stacks, fused_groups, _ = fuse_stacks([maf, shaped], groups)
    assert len(stacks) == 1 and fused_groups[0][1] == ["a", "b", "c", "d", "e"]
    with torch.no_grad():
        fused = stacks[0].log_prob_all(x, torch.arange(5))
        separate = torch.cat(
            [maf.log_prob_all(x, torch.arange(3)), shaped.log_prob_all(x, torch.arange(3, 5))]
        )
    torch.testing.assert_close(fused, separate, atol=1e-5, rtol=1e-5)


def test_fused_training_reaches_the_weights_of_separate_training():
    steps, lr = 25, 1e-2
    maf, shaped, groups, x = _pair()
    start = [p.detach().clone() for p in [*maf.parameters(), *shaped.parameters()]]
    # separately
    separate = [maf, shaped]
    optimizer = torch.optim.Adam([p for s in separate for p in s.parameters()], lr=lr)
    for _ in range(steps):
        loss = -(
            maf.log_prob_all(x, torch.arange(3)).sum()
            + shaped.log_prob_all(x, torch.arange(3, 5)).sum()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    expected = [p.detach().clone() for p in [*maf.parameters(), *shaped.parameters()]]
    # fused, from the same start
    with torch.no_grad():
        for p, s in zip([*maf.parameters(), *shaped.parameters()], start):
            p.copy_(s)
    stacks, _, write_back = fuse_stacks([maf, shaped], groups)
    optimizer = torch.optim.Adam(stacks[0].parameters(), lr=lr)
    for _ in range(steps):
        loss = -stacks[0].log_prob_all(x, torch.arange(5)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.equal(stacks[0].free[:3], torch.zeros_like(stacks[0].free[:3]))  # MAF slots
    write_back()
    got = [p.detach() for p in [*maf.parameters(), *shaped.parameters()]]
    moved = max(float((e - s).abs().max()) for e, s in zip(expected, start) if e.numel())
    assert moved > 0.05  # the check can fail: training moved the weights
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "other",
    [
        pc.LocationScale(hidden_features=(8, 8)),  # a spline noise shape: not the same model
        pc.LocationScale(hidden_features=(16, 16), noise_shape="sinh-arcsinh"),  # other widths
        pc.AdditiveNoise(hidden_features=(8, 8), noise_shape="sinh-arcsinh"),
    ],
)
def test_only_a_maf_and_its_noise_shaped_location_scale_fuse(other):
    maf = pc.MAF(hidden_features=(8, 8)).build(PARENTS[:3], num_features=5)
    stack = other.build(PARENTS[3:], num_features=5)
    groups = [(maf.spec, ["a", "b", "c"]), (other, ["d", "e"])]
    stacks, out_groups, _ = fuse_stacks([maf, stack], groups)
    assert stacks == [maf, stack] and out_groups == groups


def test_the_default_fit_trains_its_maf_and_refinement_nodes_as_one_stack(monkeypatch):
    import pyrocausal.models.flow_scm as flow_scm

    seen = []

    def spy(stacks, groups):
        out = fuse_stacks(stacks, groups)
        seen.append(([type(s.spec).__name__ for s in stacks], len(out[0])))
        return out

    monkeypatch.setattr(flow_scm, "fuse_stacks", spy)
    truth = random_scm(3, nodes=4)
    scm = pc.SCM(truth.graph)
    scm.fit(truth.sample(600, seed=0), epochs=10, progress=False, seed=0)
    pilot = seen[0]  # every network candidate of the pilot trains in one stack
    assert pilot == (["MAF", "LocationScale"], 1)
    assert len(seen) == 2  # the pilot, then the chosen networks


def test_the_shaped_tail_has_the_gradients_of_autograd():
    from pyrocausal.fused import _ShapedTail
    from pyrocausal.mechanisms import SinhArcsinhTransform

    torch.manual_seed(0)
    z = torch.randn(5, 7, 1, dtype=torch.double, requires_grad=True)
    ladj = torch.randn(5, 7, 1, dtype=torch.double, requires_grad=True)
    # slot 4's log tail weight beyond the clamp: no gradient, as torch.clamp gives none
    free = torch.tensor([[[0.3, 0.2]]] * 3 + [[[-0.4, 0.5]], [[0.1, 3.5]]], dtype=torch.double)
    free.requires_grad_(True)
    torch.autograd.gradcheck(lambda *a: _ShapedTail.apply(*a, 2), (z, ladj, free))

    def reference(z, ladj, free):  # split, shape the tail by autograd, concatenate
        t = SinhArcsinhTransform(free[2:, :, :1], free[2:, :, 1:2])
        y, inner = t(z[2:]), t.log_abs_det_jacobian(z[2:], None)
        return torch.cat([z[:2], y]), torch.cat([ladj[:2], ladj[2:] + inner])

    got, want = _ShapedTail.apply(z, ladj, free, 2), reference(z, ladj, free)
    weights = torch.randn(5, 7, 1, dtype=torch.double), torch.randn(5, 7, 1, dtype=torch.double)
    grads = [
        torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, out)), (z, ladj, free))
        for out in (got, want)
    ]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    for g, w in zip(*grads):
        torch.testing.assert_close(g, w)
    assert float(grads[0][2][4, 0, 1]) == 0.0 and float(grads[0][2][3, 0, 1]) != 0.0
    assert float(grads[0][2][:2].abs().sum()) == 0.0  # the plain slots' parameters stay put
