"""Properties of the flow SCM that can fail: exact abduction, do semantics, ground truth."""

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Predictive
from torch.distributions.transforms import AffineTransform, ReshapeTransform

import pyrocausal as pc
from pyrocausal.datasets import load_scm
from pyrocausal.inference import TrainingDivergedError, replay_counterfactual
from pyrocausal.mechanisms import StackedMechanism, ZukoBase
from pyrocausal.models.flow_scm import _label

MECHANISMS = [
    pc.MAF(hidden_features=(16, 16)),
    pc.NSF(bins=6, hidden_features=(16, 16)),
    pc.LinearGaussian(),
    pc.LinearGaussian(degree=2),
    pc.LocationScale(bins=4, hidden_features=(8,)),
]
IDS = ["maf", "nsf", "linear", "quadratic", "lsnm"]


@pytest.fixture(scope="module")
def triangle():
    truth = load_scm("triangle_nonlinear")
    data, noise = truth.sample_with_noise(1500, seed=0)
    return truth, data, noise


def _fitted(truth, data, mechanism, epochs=3):
    scm = pc.SCM(truth.graph, mechanisms=mechanism)
    scm.fit(data, epochs=epochs, progress=False, seed=0)
    return scm


def _tensors(frame):
    return {c: torch.tensor(frame[c].to_numpy(), dtype=torch.float32) for c in frame}


# ---------------------------------------------------------------- the Pyro program
@pytest.mark.parametrize("mechanism", MECHANISMS, ids=IDS)
def test_program_sites_and_log_prob_agree_with_log_prob(triangle, mechanism):
    truth, data, _ = triangle
    scm = _fitted(truth, data, mechanism)
    rows = data.head(50)
    trace = poutine.trace(pyro.condition(scm.model, data=_tensors(rows))).get_trace(
        num_rows=len(rows)
    )
    assert trace.observation_nodes == ["x1", "x2", "x3"]
    assert all(trace.nodes[n]["is_observed"] for n in ("x1", "x2", "x3"))
    per_row = sum(trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]) for n in scm.nodes)
    np.testing.assert_allclose(scm.log_prob(rows).to_numpy(), per_row.detach().numpy(), rtol=1e-5)
    # The batched training density (standardized) equals the program's density (original
    # units) up to the Jacobian of the standardization.
    z = (torch.tensor(rows.to_numpy(), dtype=torch.float32) - scm.loc) / scm.scale
    batched = sum(
        st.log_prob_all(z, torch.tensor([scm.nodes.index(n) for n in nodes])).sum(0)
        for st, (_, nodes) in zip(scm.stacks, scm._groups)
    )
    np.testing.assert_allclose(
        (batched - scm.scale.log().sum()).detach().numpy(), per_row.detach().numpy(), rtol=1e-4
    )


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=IDS)
def test_site_distribution_equals_the_three_part_composition(triangle, mechanism):
    # distribution() fuses the flow's inverse, the de-standardization and the reshape into one
    # transform (for speed); densities, noise and values must be the composition's, also when
    # the parents carry a leading draws dimension (posterior queries).
    truth, data, _ = triangle
    scm = _fitted(truth, data, mechanism)
    values = _tensors(data.head(40))
    drawn = {k: torch.stack([v, v + 0.1]) for k, v in values.items()}
    for parents in (values, drawn):
        for i, node in enumerate(scm.nodes):
            fused = scm.distribution(node, parents, torch.Size([40]))
            flow = scm.flow(node, scm._context(node, parents))
            parts = dist.TransformedDistribution(
                ZukoBase(flow.base.expand(fused.batch_shape)),
                [
                    flow.transform.inv,
                    AffineTransform(scm.loc[i], scm.scale[i], event_dim=1),
                    ReshapeTransform(torch.Size([1]), torch.Size([])),
                ],
            )
            assert fused.batch_shape == parts.batch_shape and fused.event_shape == ()
            x = parents[node]
            torch.testing.assert_close(fused.log_prob(x), parts.log_prob(x))
            u = fused.transforms[0].inv(x)
            assert u.shape == (*torch.broadcast_shapes(x.shape, fused.batch_shape), 1)
            torch.testing.assert_close(
                u, flow.transform(((x - scm.loc[i]) / scm.scale[i])[..., None])
            )
            torch.testing.assert_close(fused.transforms[0](u), x, rtol=1e-4, atol=1e-4)
            ladj = fused.transforms[0].log_abs_det_jacobian(u, x)
            torch.testing.assert_close(ladj, fused.base_dist.log_prob(u) - fused.log_prob(x))


def test_model_works_with_predictive(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[0])
    samples = Predictive(scm.model, num_samples=4)(num_rows=7)
    assert samples["x3"].shape == (4, 7)


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=IDS)
def test_abduct_then_predict_reproduces_the_data(triangle, mechanism):
    """Replay of the guide's noise through the un-intervened program returns the facts."""
    truth, data, _ = triangle
    scm = _fitted(truth, data, mechanism)
    values = _tensors(data)
    noise = poutine.trace(scm.guide).get_trace(values)
    with torch.no_grad():
        replayed = replay_counterfactual(scm.model, noise, {}, scm.nodes, num_rows=len(data))
    for node in scm.nodes:
        err = (replayed[node].double() - torch.tensor(data[node].to_numpy())).abs().max()
        assert err < 1e-4, (node, float(err))
    abducted = scm.abduct(data)
    np.testing.assert_allclose(
        abducted["x2"], noise.nodes["x2_base"]["value"][:, 0].detach().numpy(), rtol=1e-6
    )


@pytest.mark.parametrize("mechanism", MECHANISMS, ids=IDS)
def test_counterfactual_changes_descendants_only(triangle, mechanism):
    truth, data, _ = triangle
    scm = _fitted(truth, data, mechanism)
    rows = data.head(200)
    cf = scm.counterfactual(rows, {"x2": 1.5})
    assert (cf["x2"] == 1.5).all()
    assert (cf["x1"] == rows["x1"]).all()  # non-descendant: exactly the factual value
    assert (cf["x3"] - rows["x3"]).abs().max() > 1e-3  # the descendant moved
    # the factual value as the intervention is the identity
    same = scm.counterfactual(rows, {"x2": rows["x2"].to_numpy()})
    np.testing.assert_allclose(same["x3"], rows["x3"], atol=1e-4)


def test_counterfactual_is_pyro_do_plus_replay(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[0])
    rows = data.head(20)
    noise = poutine.trace(scm.guide).get_trace(_tensors(rows))
    reparam = pc.inference.reparam_noise(pyro.do(scm.model, {"x1": torch.tensor(0.3)}), scm.nodes)
    with torch.no_grad():
        by_hand = poutine.replay(reparam, trace=noise)(num_rows=len(rows))
    cf = scm.counterfactual(rows, {"x1": 0.3})
    np.testing.assert_allclose(cf["x3"], by_hand["x3"].numpy(), rtol=1e-6)


def test_prediction_runs_only_the_changed_nodes_and_agrees_with_a_full_replay(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[0])
    rows = data.head(20)
    tensors = _tensors(rows)
    fixed = {"x1": tensors["x1"]}
    guide = poutine.trace(scm.guide).get_trace(tensors, fixed=fixed)
    assert "x1_base" not in guide.nodes and {"x2_base", "x3_base"} <= set(guide.nodes)
    acted = pyro.do(scm.model, {"x2": torch.tensor(0.7)})
    with torch.no_grad():
        model = poutine.trace(
            poutine.replay(pc.inference.reparam_noise(acted, ["x2", "x3"]), trace=guide)
        ).get_trace(num_rows=len(rows), fixed=fixed)
        full = poutine.replay(
            pc.inference.reparam_noise(acted, scm.nodes),
            trace=poutine.trace(scm.guide).get_trace(tensors),
        )(num_rows=len(rows))
    # x1 is given (a deterministic site at the factual value), x3 runs its mechanism
    assert model.nodes["x1"]["infer"].get("_deterministic")
    assert torch.equal(model.nodes["x1"]["value"], tensors["x1"])
    cf = scm.counterfactual(rows, {"x2": 0.7})
    np.testing.assert_allclose(cf["x3"], full["x3"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(cf["x3"], model.nodes["x3"]["value"].numpy(), rtol=1e-6)


def test_shift_and_per_row_and_joint_interventions(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[0])
    rows = data.head(30)
    shifted = scm.counterfactual(rows, {"x2": lambda x: x + 1.0})
    np.testing.assert_allclose(shifted["x2"], rows["x2"] + 1.0, atol=1e-4)
    assert (shifted["x1"] == rows["x1"]).all()
    zero = scm.counterfactual(rows, {"x2": lambda x: x})
    np.testing.assert_allclose(zero["x3"], rows["x3"], atol=1e-4)
    per_row = np.linspace(-1, 1, len(rows))
    cf = scm.counterfactual(rows, {"x2": per_row, "x1": torch.tensor(0.5)})
    np.testing.assert_allclose(cf["x2"], per_row, atol=1e-6)
    assert np.allclose(cf["x1"], 0.5)
    with pytest.raises(ValueError, match="7 values but there are 30 rows"):
        scm.counterfactual(rows, {"x2": np.zeros(7)})


def test_do_cuts_incoming_edges_and_leaves_the_scm_unchanged(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[0], epochs=20)
    before = scm.sample(500, seed=3)
    low = scm.do({"x2": -1.0}).sample(500, seed=3)
    high = scm.do({"x2": 4.0}).sample(500, seed=3)
    # The parent's marginal does not move under do(x2): same draws under the same seed.
    np.testing.assert_array_equal(low["x1"], before["x1"])
    np.testing.assert_array_equal(high["x1"], before["x1"])
    assert (low["x2"] == -1.0).all() and (high["x2"] == 4.0).all()
    assert abs(high["x3"].mean() - low["x3"].mean()) > 0.5  # the child responds
    after = scm.sample(500, seed=3)
    pd.testing.assert_frame_equal(before, after)


def test_do_is_pyro_do_on_the_model(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[0])
    pyro.set_rng_seed(11)
    with torch.no_grad():
        by_hand = pyro.do(scm.model, {"x1": torch.tensor(0.7)})(num_rows=64)
    ours = scm.do({"x1": 0.7}).sample(64, seed=11)
    np.testing.assert_allclose(ours["x3"], by_hand["x3"].numpy(), rtol=1e-6)
    trace = poutine.trace(scm.do({"x1": 0.7}).model).get_trace(num_rows=3)
    # pyro.do splits the site: the program goes on with 0.7 while the trace's "x1" holds a
    # draw from the mechanism (see PITFALLS.md), so answers are read from the return value.
    assert torch.all(trace.nodes["_RETURN"]["value"]["x1"] == 0.7)
    assert not torch.all(trace.nodes["x1"]["value"] == 0.7)


# ---------------------------------------------------------------- ground truth
GROUND_TRUTH = [
    # (scm, mechanisms, epochs, max CF RMSE / sd(target), max |ATE error| / sd(target)) on
    # 3,000 rows, seed 0; "seen" is the worst intervened node on this machine. Linear SCMs
    # with "auto" are least squares (seen 0.002 / 0.017). The default (Auto.light(): MAF
    # 16x16 networks where a node is not linear) is weakest at this size on the non-linear
    # triangle's x3, a steep sigmoid of x2^2, and on the fork's x4 (CF seen 0.26). The
    # fork's ATE under do(x2) depends on where the networks' training lands: seen 0.105 for
    # the default, 0.036-0.127 for the same MAF networks from other initial weights (data
    # seeds 0 and 1), hence 0.15. On the Simpson SCM the F-test gives x3 the quadratic
    # regression: CF error under do(x2) 0.059 (linear x3: 0.096) but ATE error 0.102 (0.061),
    # hence 0.15 there too. Tolerances leave room for other CPUs' arithmetic.
    ("chain_linear", "auto", 60, 0.02, 0.02),
    ("triangle_linear", "auto", 60, 0.05, 0.05),
    ("fork_nonlinear", None, 60, 0.35, 0.15),
    ("triangle_nonlinear", None, 100, 0.45, 0.15),
    ("simpson_nonlinear", None, 60, 0.10, 0.15),
]


@pytest.mark.parametrize("name, mechanisms, epochs, cf_tol, ate_tol", GROUND_TRUTH)
def test_counterfactuals_and_ate_match_ground_truth(name, mechanisms, epochs, cf_tol, ate_tol):
    """Small training budget (3,000 rows); tolerances are relative to the target's spread."""
    truth = load_scm(name)
    data = truth.sample(3000, seed=0)
    test, noise = truth.sample_with_noise(500, seed=1)
    scm = pc.SCM(truth.graph, mechanisms=mechanisms)
    scm.fit(data, epochs=epochs, progress=False, seed=0)
    sink = truth.graph.nodes[-1]
    spread = data[sink].std()
    for node in truth.intervened:
        lo, mid, hi = truth.intervention_values(node)
        cf = scm.counterfactual(test, {node: mid})
        true = truth.counterfactual(noise, {node: mid})
        rmse = float(np.sqrt(((cf[sink] - true[sink]) ** 2).mean()))
        assert rmse < cf_tol * spread, (node, rmse, spread)
        ate = scm.ate(sink, {node: hi}, {node: lo}, num_samples=4000, seed=0)
        true_ate = truth.ate(sink, {node: hi}, {node: lo}, n=20000)
        assert abs(ate - true_ate) < ate_tol * spread, (node, ate, true_ate)


# ---------------------------------------------------------------- bad input
def test_bad_input_gets_a_clear_error_and_nothing_is_mutated(triangle):
    truth, data, _ = triangle
    scm = _fitted(truth, data, MECHANISMS[2])
    original = data.copy()
    cases = [
        (data.drop(columns="x3"), "missing column"),
        (data.assign(extra=1.0), "'extra'"),
        (data.assign(x2="a"), "'x2' of data is not numeric"),
        (data.assign(x3=np.where(np.arange(len(data)) == 5, np.nan, data["x3"])), "'x3'.*NaN"),
        (data.assign(x1=np.inf), "'x1'.*infinite"),
        (data.iloc[:0], "empty"),
    ]
    for frame, message in cases:
        for call in (scm.fit, scm.log_prob, scm.abduct):
            with pytest.raises(ValueError, match=message):
                call(frame)
        with pytest.raises(ValueError, match=message.replace("of data", "of factual")):
            scm.counterfactual(frame, {"x2": 0.0})
    with pytest.raises(ValueError, match="unknown variable 'x9'"):
        scm.counterfactual(data, {"x9": 1.0})
    with pytest.raises(ValueError, match="unknown variable 'x9'"):
        scm.do({"x9": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        scm.ate("x9", {"x1": 1.0}, {"x1": 0.0})
    with pytest.raises(TypeError, match="DataFrame"):
        scm.log_prob(data.to_numpy())
    intervention = {"x2": np.zeros(len(data))}
    scm.counterfactual(data, intervention)
    assert (intervention["x2"] == 0).all()
    pd.testing.assert_frame_equal(data, original)


def test_unfitted_model_refuses_queries_that_need_data(triangle):
    truth, data, _ = triangle
    with pytest.raises(RuntimeError, match="not been fitted"):
        pc.SCM(truth.graph).counterfactual(data, {"x1": 0.0})


def test_constant_column_is_rejected(triangle):
    truth, data, _ = triangle
    with pytest.raises(ValueError, match=r"\['x1'\] have no variation"):
        pc.SCM(truth.graph).fit(data.assign(x1=1.0), progress=False)


def test_mechanisms_for_unknown_nodes_are_rejected():
    with pytest.raises(pc.GraphError, match="'zz'"):
        pc.SCM({"a": [], "b": ["a"]}, mechanisms={"zz": pc.MAF()})


def test_nan_loss_stops_with_a_message(triangle, monkeypatch):
    truth, data, _ = triangle
    scm = pc.SCM(truth.graph)
    calls = {"n": 0}
    real = StackedMechanism.log_prob_all

    def poisoned(self, x, columns):
        calls["n"] += 1
        out = real(self, x, columns)
        return out * float("nan") if calls["n"] > 4 else out

    monkeypatch.setattr(StackedMechanism, "log_prob_all", poisoned)
    with pytest.raises(TrainingDivergedError, match="became nan"):
        scm.fit(data, epochs=5, progress=False, seed=0)
    assert all(torch.isfinite(p).all() for p in scm.parameters())


def test_closed_form_nodes_leave_the_steps_but_not_the_reported_loss(triangle):
    # Frozen least-squares nodes are left out of every training step; their NLL share is
    # added to the history, so the kept epoch's validation loss is the whole model's.
    from pyrocausal.inference.training import split_holdout

    truth, data, _ = triangle
    mechanisms = {"x1": pc.LinearGaussian(), "x2": pc.LinearGaussian(), "x3": pc.MAF((8, 8))}
    scm = pc.SCM(truth.graph, mechanisms=mechanisms)
    seen = []
    real = StackedMechanism.log_prob_all

    def spy(self, x, columns):
        seen.append(self.closed_form)
        return real(self, x, columns)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StackedMechanism, "log_prob_all", spy)
        history = scm.fit(data, epochs=4, progress=False, seed=0, val_fraction=0.2, patience=None)
    assert seen.count(False) > 4 * seen.count(True)  # closed-form stacks: offsets only
    x = torch.tensor(data[list(scm.nodes)].to_numpy(), dtype=torch.float32)
    _, val = split_holdout((x - scm.loc) / scm.scale, 0.2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = float(scm._nll(scm.stacks, scm._groups)(val))
    assert history.val_loss[history.best_epoch] == pytest.approx(whole, abs=1e-5)


# ---------------------------------------------------------------- persistence, devices
@pytest.mark.parametrize("mechanism", MECHANISMS, ids=IDS)
def test_save_load_round_trip_is_exact(triangle, mechanism, tmp_path):
    truth, data, _ = triangle
    scm = _fitted(truth, data, mechanism)
    scm.save(tmp_path / "m.pt")
    again = pc.SCM.load(tmp_path / "m.pt")
    pd.testing.assert_frame_equal(scm.sample(100, seed=5), again.sample(100, seed=5))
    pd.testing.assert_series_equal(scm.log_prob(data), again.log_prob(data))
    pd.testing.assert_frame_equal(
        scm.counterfactual(data, {"x1": 1.0}), again.counterfactual(data, {"x1": 1.0})
    )
    assert again.mechanisms == scm.mechanisms


def test_load_rejects_other_files(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a saved pyrocausal SCM"):
        pc.SCM.load(tmp_path / "x.pt")
    torch.save({"format": "pyrocausal.SCM", "version": 1}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="format version 1; this pyrocausal reads version 3"):
        pc.SCM.load(tmp_path / "old.pt")


def test_float64_and_device_auto(triangle):
    truth, data, _ = triangle
    scm = pc.SCM(truth.graph, mechanisms=pc.LinearGaussian()).to(torch.float64)
    scm.fit(data, epochs=2, progress=False, seed=0, device="auto")
    assert scm.dtype == torch.float64
    assert scm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert scm.counterfactual(data.head(3), {"x1": 0.0}).dtypes.eq(np.float64).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error message")
def test_asking_for_cuda_without_a_gpu_says_so(triangle):
    truth, data, _ = triangle
    with pytest.raises(ValueError, match="no CUDA device"):
        pc.SCM(truth.graph).fit(data, epochs=1, device="cuda", progress=False)


def _treatment_frame(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    severity = rng.normal(size=n)
    treated = (rng.random(n) < 1 / (1 + np.exp(-severity))).astype(float)
    days = 2 + severity + 2 * treated + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"severity": severity, "treated": treated, "days": days})


TREATMENT = {"severity": [], "treated": ["severity"], "days": ["severity", "treated"]}


@pytest.mark.parametrize(
    "mechanisms",
    [
        {"treated": pc.Bernoulli()},
        {"treated": pc.Bernoulli(), "days": pc.Auto.light(), "severity": "default"},
        {"treated": pc.Bernoulli(), "days": None},
    ],
    ids=["left-out", "auto-light-per-node", "none-per-node"],
)
def test_nodes_left_out_of_a_mapping_get_the_default_selection(mechanisms):
    scm = pc.SCM(TREATMENT, mechanisms=mechanisms)
    assert scm.auto == pc.Auto.light() and scm.auto_nodes == ("severity", "days")
    frame = _treatment_frame()
    before = frame.copy()
    scm.fit(frame, epochs=10, progress=False, seed=0)
    pd.testing.assert_frame_equal(frame, before)
    assert isinstance(scm.mechanisms["treated"], pc.Bernoulli)
    # severity is a Gaussian root and days is linear in its parents: the default takes
    # least squares for both (a left-out node used to get a 16x16 MAF instead).
    assert scm.selection.loc["treated", "chosen"] == "bernoulli (given)"
    assert scm.selection.loc["severity", "chosen"] == "linear"
    assert scm.selection.loc["days", "chosen"] in ("linear", "quadratic")
    cf = scm.counterfactual(frame.head(50), {"treated": 0.0}, num_samples=20, seed=0)
    # x days = 2 + severity + 2 t + noise: undoing a treatment takes 2 days off (tolerance:
    # the fitted slope from 1,500 rows is within a few hundredths of 2).
    treated = frame.head(50)["treated"] == 1.0
    shift = frame.head(50)["days"][treated] - cf.mean()["days"][treated.to_numpy()]
    assert np.allclose(shift, 2.0, atol=0.1)


def test_one_selection_rule_per_model_and_clear_errors_for_bad_names():
    with pytest.raises(ValueError, match="one selection rule"):
        pc.SCM(TREATMENT, mechanisms={"treated": pc.Bernoulli(), "days": pc.Auto()})
    with pytest.raises(ValueError, match="node 'days'.*'bogus'"):
        pc.SCM(TREATMENT, mechanisms={"days": "bogus"})
    with pytest.raises(TypeError, match="node 'days'"):
        pc.SCM(TREATMENT, mechanisms={"days": 3})
    given = pc.SCM(TREATMENT, mechanisms={n: "linear" for n in TREATMENT})
    assert given.auto is None and given.auto_nodes == ()
    assert pc.SCM(TREATMENT, mechanisms="default").auto == pc.Auto.light()


@pytest.mark.parametrize("given", [{}, {"a": "maf", "y": "linear"}], ids=["default", "given"])
def test_discrete_columns_whose_standardization_does_not_round_trip(given):
    # Regression: de-standardizing the rows turned 0 into about -1e-7, which the discrete
    # mechanism's start rejected ("takes the values 0, ..., 3; its column 'c' holds ...").
    rng = np.random.default_rng(6)
    c = rng.integers(0, 4, 1000).astype(float)
    a = rng.normal(size=1000)
    frame = pd.DataFrame({"a": a, "c": c, "y": a + c + 0.1 * rng.normal(size=1000)})
    x = torch.tensor(frame.to_numpy(), dtype=torch.float32)  # as SCM.fit standardizes
    back = (x - x.mean(0)) / x.std(0) * x.std(0) + x.mean(0)
    assert bool((back[:, 1] < 0).any())  # the round-off the old code tripped on is there
    graph = {"a": [], "c": ["a"], "y": ["a", "c"]}
    scm = pc.SCM(graph, mechanisms={"c": pc.Categorical(4), **given})
    scm.fit(frame, epochs=3, progress=False, seed=0)
    assert np.isfinite(scm.log_prob(frame)).all()
    probs = scm.sample(4000, seed=0)["c"].value_counts(normalize=True).sort_index()
    assert probs.index.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert np.allclose(probs, 0.25, atol=0.04)  # uniform categories; 4,000 draws: sd 0.007


def test_repr_shows_graph_mechanisms_and_state(triangle):
    truth, data, _ = triangle
    scm = pc.SCM(
        truth.graph,
        mechanisms={"x1": "linear", "x2": "linear", "x3": pc.MAF(hidden_features=(8, 8))},
    )
    lines = repr(scm).splitlines()
    assert lines[0] == "SCM(3 nodes, 3 edges, not fitted, cpu, float32)"
    assert lines[1].split() == ["x1", "linear"]
    assert lines[3].split() == ["x3", "<-", "x1,", "x2", "maf(8x8)"]
    assert "Parameter" not in repr(scm)  # the nn.Module tree stays out of the repr ...
    assert "Parameter containing" in torch.nn.Module.__repr__(scm)  # ... and within reach
    default = pc.SCM(truth.graph)
    assert repr(default).splitlines()[0].endswith("mechanisms chosen by Auto.light() in fit)")
    default.fit(data, epochs=2, progress=False, seed=0)
    head, *rows = repr(default).splitlines()
    assert "fitted" in head and "not fitted" not in head and "Auto" not in head
    chosen = {row.split()[0]: row.split()[-1] for row in rows}
    assert chosen == {n: _label(m) for n, m in default.mechanisms.items()}
    assert set(chosen.values()) <= {"linear", "quadratic", "maf(24x24)", "lsnm-sinh-arcsinh(24x24)"}
