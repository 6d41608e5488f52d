"""Data-parallel training over two CPU processes (gloo): agreement, equivalence, NaN, resume.

Every spawned process imports torch, Pyro and pyrocausal (about 5 s on the shared test
machine), so the replica checks share one group (the ``replicas`` fixture, one launch) and
the launch paths (``train_crl``, the CLI, torchrun) one process group each.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from pyrocausal.graph import CausalGraph
from pyrocausal.inference.distributed import launch, processes, shard
from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.inference.svi import SVITrainer
from pyrocausal.models import SCM

sys.path.insert(0, str(Path(__file__).parent))  # spawned replicas import the workers by name

import distributed_workers as W  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Float32 gradients averaged by DDP ((g0 + g1) / 2) against one batch's mean differ in the
# last bits; a dozen Adam steps (whose normalization can magnify a relative 1e-7 on a
# near-zero gradient) keep the weights within this.
ATOL, RTOL = 1e-5, 1e-4


def assert_close_states(a, b, atol=ATOL, rtol=RTOL):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=rtol, msg=key)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Both ranks' results of distributed_workers.replica_checks (one group of 2 processes)."""
    out = tmp_path_factory.mktemp("replicas")
    torch.set_num_threads(1)
    # The last check raises on both replicas; the caller gets the error with its own type.
    # A collective that waited for a replica that had stopped would fail after the timeout.
    with pytest.raises(TrainingDivergedError, match="step"):
        launch(W.replica_checks, str(out), devices=2, device="cpu", timeout=60)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return {"out": out, "ranks": ranks}


# ---------------------------------------------------------------------- no processes
def test_processes_and_strategy_errors(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert processes(None, None) == 1 and processes(None, 1) == 1
    assert processes("ddp", 3) == 3 and processes(None, 2) == 2
    with pytest.raises(ValueError, match="'horovod' is not known"):
        processes("horovod", 2)
    with pytest.raises(ValueError, match="positive number of processes, got 0"):
        processes(None, 0)
    with pytest.raises(ValueError, match="needs devices=N, or a launcher"):
        SVITrainer(W.Poisoned(), device="cpu", strategy="ddp")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert processes("ddp", None) == 0  # torchrun's process: join its group
    with pytest.raises(ValueError, match="devices=4 but this process is one of 2"):
        processes("ddp", 4)


def test_shard_partitions_a_permutation_like_distributed_sampler():
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    shards = [shard(order, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to 12 by wrapping round
    assert set(torch.cat(shards).tolist()) == set(range(11))
    sampler = torch.utils.data.DistributedSampler(range(11), num_replicas=3, rank=1, shuffle=False)
    assert shard(torch.arange(11), 1, 3).tolist() == list(sampler)
    # Step k of the replicas together: the rows of step k of one process with 3x the batch.
    for k, batch in [(0, 2), (1, 1), (2, 1)]:
        step = torch.cat([s[k * batch : (k + 1) * batch] for s in shards])
        assert sorted(step.tolist()) == sorted(order[3 * k * batch : 3 * (k + 1) * batch].tolist())


def test_latent_graphs_are_refused_before_any_process_starts():
    scm = SCM(CausalGraph({"u": [], "x": ["u"]}, latent=["u"]))
    df = pd.DataFrame({"x": torch.randn(50).numpy()})
    with pytest.raises(ValueError, match=r"latent node\(s\) \['u'\]"):
        scm.fit(df, epochs=1, devices=2, progress=False)


# ---------------------------------------------------------------------- one group, two replicas
def test_scm_replicas_agree_after_every_step(replicas):
    for r in replicas["ranks"]:
        steps = r["scm"]["steps"]
        assert steps["steps"] == W.SCM_EPOCHS * 2
        assert steps["max_difference"] == 0.0  # the same averaged gradient, the same step
    a, b = (r["scm"] for r in replicas["ranks"])
    assert a["loss"] == b["loss"] and a["val_loss"] == b["val_loss"]


def test_scm_two_processes_equal_one_process_on_the_global_batch(replicas):
    graph, df = W.scm_data()
    one = W.tiny_scm(graph)
    history = one.fit(df, epochs=W.SCM_EPOCHS, batch_size=2 * W.SCM_BATCH, seed=0, progress=False)
    two = replicas["ranks"][0]["scm"]
    torch.testing.assert_close(torch.tensor(history.loss), torch.tensor(two["loss"]), rtol=1e-6,
                               atol=0)  # fmt: skip
    assert_close_states(W.state(one), two["state"])


def test_train_mle_nan_on_one_replica_stops_both(replicas):
    zero, one = (r["mle_nan"] for r in replicas["ranks"])
    assert zero.startswith("TrainingDivergedError") and "on another replica" in zero
    assert one.startswith("TrainingDivergedError") and "nan at epoch 0, step 3" in one
    assert all(r["mle_nan_weights_finite"] for r in replicas["ranks"])  # epoch start restored


def test_svi_replicas_agree_after_every_step(replicas):
    for r in replicas["ranks"]:
        assert r["svi"]["steps"]["steps"] == W.SVI_EPOCHS * 2
        assert r["svi"]["steps"]["max_difference"] == 0.0
    assert replicas["ranks"][0]["svi"]["loss"] == replicas["ranks"][1]["svi"]["loss"]
    assert replicas["ranks"][0]["module_local_params_after"] is False  # restored after the fit


def test_svi_two_processes_equal_one_process_on_the_global_batch(replicas):
    """One process steps on both shards' rows of each global batch, each shard's ELBO with
    the Monte-Carlo stream of its replica (seeded seed + rank), the gradients averaged."""
    model, data = W.tiny_crl(), W.crl_data()
    trainer = SVITrainer(model, lr=W.SVI_LR, device="cpu", progress=False)
    generator = torch.Generator().manual_seed(0)
    streams = [torch.manual_seed(r).get_state() for r in range(2)]
    model.train()
    for epoch in range(W.SVI_EPOCHS):
        order = torch.randperm(W.SVI_UNITS, generator=generator)
        shards = [shard(order, r, 2) for r in range(2)]
        for start in range(0, len(shards[0]), W.SVI_BATCH):
            trainer.optimizer.zero_grad()
            for r in range(2):
                torch.set_rng_state(streams[r])
                rows = shards[r][start : start + W.SVI_BATCH]
                loss = trainer.batch_loss([t[rows] for t in data], trainer.weights(epoch))
                (loss / 2).backward()
                streams[r] = torch.get_rng_state()
            trainer.optimizer.step()
    assert_close_states(W.state(model), replicas["ranks"][0]["svi"]["state"])


def test_svi_checkpoint_of_two_processes_resumes_exactly(replicas, tmp_path):
    r0 = replicas["ranks"][0]
    # Every replica's random state was saved: the resumed 2-process fit is the unbroken one.
    assert_close_states(r0["svi_resumed"]["state"], r0["svi"]["state"], atol=0, rtol=0)
    assert r0["svi_resumed"]["loss"] == r0["svi"]["loss"]
    assert r0["saves"] >= 2 and replicas["ranks"][1]["saves"] == 0  # rank 0 writes, alone
    # One process loads it: the 2-process fit's weights, epoch and history.
    path = tmp_path / "checkpoint.pt"
    path.write_bytes((replicas["out"] / "svi-2-epochs-kept.pt").read_bytes())
    blob = torch.load(path, weights_only=True)
    assert len(blob["replica_rng"]) == 2
    runs = []
    for _ in range(2):
        trainer = SVITrainer(W.tiny_crl(), lr=W.SVI_LR, device="cpu", progress=False)
        trainer.load(path)
        assert trainer.epoch == 2 and trainer.history.loss == r0["svi"]["loss"][:2]
        assert_close_states(W.state(trainer.module), r0["svi_2_epochs"], atol=0, rtol=0)
        # and resumes there: two more epochs on the global batch, from rank 0's state.
        trainer.fit(W.crl_data(), W.SVI_EPOCHS, batch_size=2 * W.SVI_BATCH)
        assert len(trainer.history) == W.SVI_EPOCHS
        runs.append(W.state(trainer.module))
    assert_close_states(runs[0], runs[1], atol=0, rtol=0)  # from the same saved random state


def test_svi_nan_on_one_replica_stops_both_at_the_same_step(replicas):
    messages = [r["svi_nan"] for r in replicas["ranks"]]
    assert all(m.startswith("TrainingDivergedError") for m in messages)
    assert sum("on another replica" in m for m in messages) == 1  # the poisoned row: one shard
    steps = {m.split(", step ")[1].split()[0] for m in messages}
    assert len(steps) == 1  # the same step on both
    assert replicas["ranks"][0]["svi_nan_epoch"] == replicas["ranks"][1]["svi_nan_epoch"]


# ---------------------------------------------------------------------- the launch paths
def test_train_crl_on_two_processes(tmp_path):
    from pyrocausal.inference.crl import train_crl

    torch.set_num_threads(1)
    options = {"n_train": 64, "n_test": 32}
    run = train_crl("cvae", "morpho", epochs=2, batch_size=16, out_dir=tmp_path / "run",
                    cache_dir=tmp_path / "cache", dataset_options=options, progress=False,
                    devices=2)  # fmt: skip
    assert run.model.metadata["processes"] == 2 and len(run.history) == 2
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and len(saved["replica_rng"]) == 2
    assert_close_states(saved["module"], W.state(run.model), atol=0, rtol=0)
    records = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in records] == [1, 2]


def _run(command, tmp_path, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(var, None)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _csv(tmp_path):
    graph, df = W.scm_data()
    df.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "graph.json").write_text(json.dumps(graph.to_dict()))
    return graph, df


def test_cli_fit_on_two_processes(tmp_path, monkeypatch, capsys):
    """``pyrocausal fit ... --devices 2`` (SCM.fit spawning its replicas) gives the model of
    a one-process fit with twice the batch."""
    from pyrocausal.cli import main

    graph, df = _csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    assert main([*FIT, "--devices", "2"]) == 0
    assert "saved to model.pt" in capsys.readouterr().out
    assert_close_states(_one_process_fit(graph, df), W.state(SCM.load(tmp_path / "model.pt")))


def test_documented_torchrun_command(tmp_path):
    """``torchrun --standalone --nproc-per-node 2 -m pyrocausal fit ...`` from a shell: each
    process joins torchrun's group, rank 0 alone prints and saves."""
    graph, df = _csv(tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "pyrocausal", *FIT]  # fmt: skip
    stdout = _run(command, tmp_path)
    assert stdout.count("saved to model.pt") == 1
    assert_close_states(_one_process_fit(graph, df), W.state(SCM.load(tmp_path / "model.pt")))


FIT = ["fit", "data.csv", "--graph", "graph.json", "--mechanisms", "maf", "--epochs", "8",
       "--batch-size", "45", "--seed", "0", "--quiet", "-o", "model.pt"]  # fmt: skip


def _one_process_fit(graph, df):
    one = SCM(graph, mechanisms="maf")
    one.fit(df, epochs=8, batch_size=90, seed=0, progress=False)
    return W.state(one)
