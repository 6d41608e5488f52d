"""pyrocausal: causal generative models as Pyro programs with Zuko flow mechanisms.

Example:
    >>> import pyrocausal as pc
    >>> g = pc.CausalGraph({"x1": [], "x2": ["x1"], "x3": ["x1", "x2"]})
    >>> scm = pc.SCM(g)
    >>> scm.nodes
    ('x1', 'x2', 'x3')
"""

from pyrocausal.custom import HandWritten
from pyrocausal.discrete import Bernoulli, Categorical
from pyrocausal.evaluation import EvaluationReport, evaluate
from pyrocausal.graph import CausalGraph, GraphError
from pyrocausal.handlers import intervene
from pyrocausal.inference import History, TrainingDivergedError
from pyrocausal.inference.sensitivity import Confounding, UnidentifiedQueryWarning
from pyrocausal.mechanisms import (
    MAF,
    NSF,
    AdditiveNoise,
    Auto,
    LinearGaussian,
    LocationScale,
    Mechanism,
    PostNonlinear,
)
from pyrocausal.models import SCM, InterventionalSCM, SCMEnsemble
from pyrocausal.progress import get_progress, set_progress
from pyrocausal.results import ATEResult, CausalQueryResult

__version__ = "0.1.0"

__all__ = [
    "ATEResult",
    "MAF",
    "NSF",
    "AdditiveNoise",
    "Auto",
    "Bernoulli",
    "Categorical",
    "HandWritten",
    "SCM",
    "CausalGraph",
    "Confounding",
    "UnidentifiedQueryWarning",
    "CausalQueryResult",
    "EvaluationReport",
    "GraphError",
    "History",
    "InterventionalSCM",
    "LinearGaussian",
    "LocationScale",
    "PostNonlinear",
    "Mechanism",
    "SCMEnsemble",
    "TrainingDivergedError",
    "evaluate",
    "get_progress",
    "intervene",
    "set_progress",
]
