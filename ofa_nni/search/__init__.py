"""Predictor-guided evolutionary search over integer-encoded subnets ("specialize", OFA Sec. 3.3).

Once the supernet is trained, OFA finds a subnet for a deployment target by regularised evolution
guided by an accuracy predictor, under an efficiency constraint (Cai et al., ICLR 2020, Sec. 3.3
and App. A: population 100, 500 generations, parent ratio 0.25, mutation ratio 0.5, mutation
probability 0.1, resolution mutation probability 0.5). This package is that search, rebuilt for
throughput and for many targets at once:

* Populations are ``(n, len(labels))`` int64 index arrays (:meth:`ArchSpace.to_indices` order).
  Mutation, crossover, constraint checks, repair and objective calls are batched over the whole
  population -- and over all targets -- with no Python loop per candidate.
* Constraints are met by construction: each generation proposes twice the population in one
  batch, prefers proposals that already meet their budgets (as OFA's re-drawing does) and
  *repairs* the others by moving some of their choices towards the cheapest subnet (vectorised,
  usually one batched cost call), never redrawing until feasible. A budget below the smallest
  achievable cost raises an InvalidInputError that states that value.
* Candidates are canonicalised (genes of inactive blocks zeroed) and deduplicated against an
  archive of everything scored so far, so no query is spent twice on the same subnet; the spare
  proposals replace the duplicates, so a generation still scores ``population_size`` new subnets.
* Many targets share one run: one objective call per generation scores the children of every
  target, and every new candidate is offered to every target whose budgets it meets. Hence the
  result for a larger budget is never worse than for a smaller one.
* :class:`ParetoSearch` returns the Pareto front of the objective against every cost (NSGA-II
  style selection: non-dominated sorting and crowding distance, vectorised with numpy).

Both searches follow an ask-and-tell protocol so that other drivers (NNI strategies, Optuna
samplers, NNI tuners, real evaluation of subnets) can run them::

    search = EvolutionSearch(arch_space=arch_space, costs={"macs": cost_model.macs},
                             targets=[{"macs": 200e6}, {"macs": 300e6}], seed=0)
    while not search.done:
        candidates = search.ask()                 # (m, L) int64, new subnets only
        search.tell(candidates, objective(candidates))
    result = search.result()                      # one TargetResult per target

or simply ``search.run(objective)`` / :func:`specialize`. Objectives and costs are callables on an
``(n, L)`` int64 index array returning an ``(n,)`` array; the objective is maximised (predicted
accuracy), every cost must stay ``<=`` its budget. A search is deterministic for a seed (given a
deterministic objective) and can be checkpointed with ``state_dict`` / ``load_state_dict``.

The settings of both engines are one :class:`EvolutionSettings` (the paper's by default). The
package, by concern: ``settings`` (:class:`EvolutionSettings`), ``evaluation`` (calling costs and
objectives, :func:`minimum_costs`), ``operators`` (mutation, crossover, repair), ``pareto``
(non-dominated sorting, crowding distance, :func:`rank_and_crowding`), ``archive`` (every scored
subnet, keyed), ``results``, ``base`` (the ask/tell engine), ``evolution``
(:class:`EvolutionSearch`), ``pareto_search`` (:class:`ParetoSearch`), ``specialize``. The
encoding (index checks, active genes, canonical rows) is the space's own: :class:`ArchSpace`.
Only numpy is needed.
"""

from __future__ import annotations

from ofa_nni.search.evaluation import ArrayFn, minimum_costs
from ofa_nni.search.evolution import EvolutionSearch
from ofa_nni.search.pareto import crowding_distance, non_dominated_sort, pareto_mask, rank_and_crowding
from ofa_nni.search.pareto_search import ParetoSearch
from ofa_nni.search.results import ParetoFront, SearchResult, TargetResult
from ofa_nni.search.settings import PAPER_SETTINGS, EvolutionSettings
from ofa_nni.search.specialize import canonical_indices, specialize

__all__ = [
    "ArrayFn",
    "EvolutionSettings",
    "PAPER_SETTINGS",
    "EvolutionSearch",
    "ParetoSearch",
    "SearchResult",
    "TargetResult",
    "ParetoFront",
    "specialize",
    "minimum_costs",
    "non_dominated_sort",
    "crowding_distance",
    "rank_and_crowding",
    "pareto_mask",
    "canonical_indices",
]
