"""What the replicas of tests/inference/test_distributed.py run (an importable module: the
replicas are spawned and import their function by name)."""

from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.distributed as tdist
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from pyrocausal.datasets import load_scm
from pyrocausal.inference.errors import TrainingDivergedError
from pyrocausal.inference.svi import SVITrainer
from pyrocausal.inference.training import train_mle
from pyrocausal.mechanisms import MAF, LinearGaussian
from pyrocausal.models import SCM
from pyrocausal.models.scm_vae import SCMVAE

SCM_ROWS, SCM_EPOCHS, SCM_BATCH = 200, 12, 45  # 180 training rows: 2 steps of 2 x 45 an epoch
SVI_UNITS, SVI_BATCH, SVI_EPOCHS, SVI_LR = 48, 12, 4, 1e-2  # 2 steps of 2 x 12 an epoch


def scm_data():
    truth = load_scm("triangle_nonlinear")
    return truth.graph, truth.sample(SCM_ROWS, seed=0)


def tiny_scm(graph):
    """Least squares for the root (frozen, out of the steps) and small MAFs for the others."""
    return SCM(graph, {"x1": LinearGaussian(), "x2": MAF((8, 8)), "x3": MAF((8, 8))})


def tiny_crl():
    torch.manual_seed(0)
    return SCMVAE({"a": [], "b": ["a"]}, (1, 8, 8), latent_dim=2, kl_weight=0.1)


def crl_data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(SVI_UNITS, 1, 8, 8, generator=g), torch.randn(SVI_UNITS, 2, generator=g)


class Poisoned(nn.Module):
    """A Gaussian mean whose ELBO is -inf on the rows whose ``poison`` is 1."""

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(()))

    def model(self, x, poison):
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(self.loc, 1.0), obs=x)
            pyro.factor("poison", torch.log1p(-poison))

    def guide(self, x, poison):
        pass


def poisoned_data(n=32, row=5):
    poison = torch.zeros(n)
    poison[row] = 1.0
    return torch.randn(n, generator=torch.Generator().manual_seed(1)), poison


class StepCheck:
    """After every optimizer step, the largest difference between the replicas' parameters."""

    def __init__(self):
        self.steps, self.max_difference = 0, 0.0
        self.handle = register_optimizer_step_post_hook(self)

    def __call__(self, optimizer, args, kwargs):
        flat = torch.cat(
            [p.detach().flatten() for g in optimizer.param_groups for p in g["params"]]
        )
        copies = [torch.empty_like(flat) for _ in range(tdist.get_world_size())]
        tdist.all_gather(copies, flat)
        self.steps += 1
        self.max_difference = max(
            self.max_difference, max(float((c - flat).abs().max()) for c in copies)
        )

    def close(self):
        self.handle.remove()
        return {"steps": self.steps, "max_difference": self.max_difference}


def state(module):
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def replica_checks(out: str) -> None:
    """Every check of the suite in one group of replicas; rank r writes out/rank{r}.pt.

    Ends with a NaN on one replica, re-raised, so the caller sees what `launch` does with it.
    """
    rank = tdist.get_rank()
    out_dir = Path(out)
    result = {}

    # A tiny SCM (mechanism choice, then the networks): replicas agree after every step.
    check = StepCheck()
    graph, df = scm_data()
    scm = tiny_scm(graph)
    history = scm.fit(
        df, epochs=SCM_EPOCHS, batch_size=SCM_BATCH, seed=0, progress=False, strategy="ddp"
    )
    result["scm"] = {
        "steps": check.close(),
        "state": state(scm),
        "loss": history.loss,
        "val_loss": history.val_loss,
    }

    # train_mle: a NaN on replica 1 in the last step of an epoch (replica 0's losses are all
    # finite) stops both.
    lin = torch.nn.Linear(1, 1)
    calls = [0]

    def nll(batch):
        calls[0] += 1
        loss = ((lin(batch) - 2 * batch) ** 2).mean()
        return loss * float("nan") if rank == 1 and calls[0] == 4 else loss

    x = torch.randn(64, 1, generator=torch.Generator().manual_seed(0))
    try:
        train_mle(lin, nll, x, epochs=3, batch_size=8, seed=0, progress=False, strategy="ddp")
        result["mle_nan"] = "no error"
    except TrainingDivergedError as error:
        result["mle_nan"] = f"TrainingDivergedError: {error}"
    result["mle_nan_weights_finite"] = bool(all(torch.isfinite(p).all() for p in lin.parameters()))

    # A tiny CRL model under SVI: agreement after every step, and exact resume.
    saves = []
    original_save = SVITrainer.save

    def counted_save(self, path, **kwargs):
        saves.append(str(path))
        original_save(self, path, **kwargs)

    SVITrainer.save = counted_save
    data = crl_data()
    check = StepCheck()
    whole = SVITrainer(tiny_crl(), lr=SVI_LR, device="cpu", progress=False, strategy="ddp")
    whole.fit(data, SVI_EPOCHS, batch_size=SVI_BATCH)
    result["svi"] = {
        "steps": check.close(),
        "state": state(whole.module),
        "loss": whole.history.loss,
    }
    first = SVITrainer(tiny_crl(), lr=SVI_LR, device="cpu", progress=False, strategy="ddp")
    checkpoint = out_dir / "svi-2-epochs.pt"
    first.fit(data, 2, batch_size=SVI_BATCH, checkpoint=checkpoint)
    result["svi_2_epochs"] = state(first.module)
    tdist.barrier()  # rank 0 has written the checkpoint; copy it before it is resumed
    if rank == 0:
        (out_dir / "svi-2-epochs-kept.pt").write_bytes(checkpoint.read_bytes())
    tdist.barrier()
    resumed = SVITrainer(tiny_crl(), lr=SVI_LR, device="cpu", progress=False, strategy="ddp")
    resumed.fit(data, SVI_EPOCHS, batch_size=SVI_BATCH, checkpoint=checkpoint, resume=True)
    result["svi_resumed"] = {"state": state(resumed.module), "loss": resumed.history.loss}
    SVITrainer.save = original_save
    result["saves"] = len(saves)
    result["module_local_params_after"] = pyro.settings.get("module_local_params")

    # SVI: the poisoned row lands on one replica; both raise at the same step.
    poisoned = SVITrainer(Poisoned(), lr=0.1, device="cpu", progress=False, strategy="ddp")
    try:
        poisoned.fit(poisoned_data(), 3, batch_size=4)
        result["svi_nan"] = "no error"
    except TrainingDivergedError as error:
        result["svi_nan"] = f"TrainingDivergedError: {error}"
        result["svi_nan_epoch"] = poisoned.epoch
        torch.save(result, out_dir / f"rank{rank}.pt")
        tdist.barrier()  # both replicas got here: neither hangs in a collective
        raise
    torch.save(result, out_dir / f"rank{rank}.pt")
