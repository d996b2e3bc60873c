"""RREH: Reconstruction Relations Embedded Hashing for semi-paired data (docs/rreh.md).

``fit(paired_views, unpaired_views, config, rng) -> RREHModel`` and
``encode(model, x, modality) -> int8 [n, bits]``; the solver (``init`` / ``update`` /
``run`` on an :class:`RREHProblem`) and its steps are in :mod:`hashjax.rreh.solver`
and :mod:`hashjax.rreh.steps`.
"""

from hashjax.rreh import criterion, steps
from hashjax.rreh.api import (
    DEFAULTS,
    RECONSTRUCT_AGAINST,
    RREHFeatures,
    RREHModel,
    check_finite_state,
    default_mesh,
    encode,
    fit,
    make_problem,
    resolve_config,
    select,
)
from hashjax.rreh.solver import (
    GRID_MODES,
    RREHAux,
    RREHHyper,
    RREHProblem,
    RREHState,
    init,
    make_hyper,
    prepare,
    run,
    run_grid,
    update,
)

__all__ = [
    "DEFAULTS",
    "GRID_MODES",
    "RECONSTRUCT_AGAINST",
    "RREHAux",
    "RREHFeatures",
    "RREHHyper",
    "RREHModel",
    "RREHProblem",
    "RREHState",
    "check_finite_state",
    "default_mesh",
    "encode",
    "fit",
    "init",
    "make_hyper",
    "make_problem",
    "prepare",
    "resolve_config",
    "run",
    "run_grid",
    "select",
    "steps",
    "criterion",
    "update",
]
