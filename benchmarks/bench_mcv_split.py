"""Which split p should molecular cross-validation use by default? A measurement.

Data: the UMI counts of scanpy's bundled ``pbmc68k_reduced()`` (700 cells x 765 genes,
recovered exactly with :func:`sklearn_n2s.io.counts_from_log_normalized`), thinned
binomially to a fraction ``depth`` of their molecules (seeded), so that the full-depth
counts can serve as the reference the thinned data never saw.

For every depth, seed and split ``p``, :class:`MolecularCrossValidationScorer` (seed =
the thinning seed) scores every rank of the grid on the thinned counts and picks the
one with the lowest loss, for two pipelines:

- ``poisson``: ``NormalizedDenoiser(LowRankDenoiser(svd_solver='full'),
  target_sum=1e4, output='counts')`` (low rank on log-normalised counts), Poisson loss.
  Reference: that pipeline fitted on the thinned counts at each rank, its normalised
  output against ``log1p(full / full.sum(1) * 1e4)``, mean squared error.
- ``sqrt_mse`` (the scorer's default loss): ``LowRankDenoiser(svd_solver='full')`` on
  square-root counts. Reference: its output on ``sqrt(thinned)`` brought to full depth
  with :func:`~sklearn_n2s.table.convert_sqrt_expectation` against ``sqrt(full)``.

Criterion: the reference loss of the chosen rank relative to the best rank of the grid,
``loss(chosen) / min_k loss(k) - 1`` (0 when MCV picks the best rank), against two
references:

- ``full``: the full-depth counts, as above. The thinned counts are part of them, so
  their noise is shared: the closer the depth is to 1, the more this reference rewards
  ranks that reproduce the noise (at depth 0.5 its best rank is the top of the grid).
- ``held-out``: the molecules the thinning left out, ``full - thinned``, independent of
  the thinned counts for Poisson data (the same argument as MCV's, with a held-out part
  of ``1 - depth`` of the molecules instead of ``(1 - p) depth``): the log-normalised
  complement for ``poisson``; ``sqrt(full - thinned)`` against the output brought to
  depth ``1 - depth`` for ``sqrt_mse``.

Run (about 3-4 minutes on one core)::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_mcv_split.py
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_mcv_split.py --seeds 1 \\
        --depths 0.2  # smoke test
"""

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

DEFAULT_GRID = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
TARGET_SUM = 1e4


def load_counts():
    import scanpy as sc

    from sklearn_n2s.io import counts_from_log_normalized

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return counts_from_log_normalized(sc.datasets.pbmc68k_reduced())


def _log_normalized(counts):
    return np.log1p(counts / counts.sum(1, keepdims=True) * TARGET_SUM)


def reference_losses(kind, thinned, full, depth, grid):
    """Losses of the pipeline fitted on ``thinned``, per rank, against the full-depth
    counts and against the held-out molecules ``full - thinned``: two arrays."""
    from sklearn_n2s.table import LowRankDenoiser, NormalizedDenoiser, convert_sqrt_expectation

    held_out = full - thinned
    losses = {"full": [], "held-out": []}
    if kind == "poisson":
        model = NormalizedDenoiser(LowRankDenoiser(svd_solver="full"), target_sum=TARGET_SUM)
        targets = {"full": _log_normalized(full), "held-out": _log_normalized(held_out)}
        for k in grid:
            output = model.set_params(denoiser__n_components=k).fit(thinned).transform(thinned)
            for name, target in targets.items():
                losses[name].append(np.mean((output - target) ** 2))
        return np.array(losses["full"]), np.array(losses["held-out"])
    # sqrt_mse: one full SVD at the largest rank; a rank-k fit is its truncation.
    root = np.sqrt(thinned)
    model = LowRankDenoiser(max(grid), svd_solver="full").fit(root)
    for k in grid:
        output = model._truncated(k).transform(root)
        losses["full"].append(np.mean(
            (convert_sqrt_expectation(output, depth, 1.0) - np.sqrt(full)) ** 2))
        losses["held-out"].append(np.mean(
            (convert_sqrt_expectation(output, depth, 1 - depth) - np.sqrt(held_out)) ** 2))
    return np.array(losses["full"]), np.array(losses["held-out"])


def mcv_losses(kind, thinned, p, seed, grid):
    from sklearn_n2s.model_selection import MolecularCrossValidationScorer
    from sklearn_n2s.table import LowRankDenoiser, NormalizedDenoiser

    scorer = MolecularCrossValidationScorer(p=p, loss=kind, random_state=seed)
    if kind == "poisson":
        model = NormalizedDenoiser(LowRankDenoiser(svd_solver="full"), target_sum=TARGET_SUM,
                                   output="counts")
        return np.array([scorer.loss_of(model.set_params(denoiser__n_components=k), thinned)
                         for k in grid])
    return np.array([scorer.loss_of(LowRankDenoiser(k, svd_solver="full"), thinned)
                     for k in grid])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=float, nargs="+", default=[0.1, 0.2, 0.5])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per depth (0, 1, ...)")
    parser.add_argument("--splits", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--losses", nargs="+", default=["poisson", "sqrt_mse"],
                        choices=["poisson", "sqrt_mse"])
    parser.add_argument("--grid", type=int, nargs="+", default=DEFAULT_GRID)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    full = load_counts()
    grid = args.grid
    references = ("full", "held-out")
    # excess[(kind, reference)][depth][p] = list over seeds of (relative excess, rank)
    excess = {(kind, ref): {d: {p: [] for p in args.splits} for d in args.depths}
              for kind in args.losses for ref in references}
    best_ranks = {key: {d: [] for d in args.depths} for key in excess}
    for depth in args.depths:
        for seed in range(args.seeds):
            thinned = np.random.default_rng(seed).binomial(
                full.astype(np.int64), depth).astype(np.float64)
            keep = thinned.sum(1) > 0  # no empty cell (none at these depths)
            thinned, kept_full = thinned[keep], full[keep]
            for kind in args.losses:
                reference = dict(zip(references,
                                     reference_losses(kind, thinned, kept_full, depth, grid)))
                for ref in references:
                    best_ranks[kind, ref][depth].append(grid[int(np.argmin(reference[ref]))])
                for p in args.splits:
                    chosen = int(np.argmin(mcv_losses(kind, thinned, p, seed, grid)))
                    for ref in references:
                        excess[kind, ref][depth][p].append(
                            (reference[ref][chosen] / reference[ref].min() - 1, grid[chosen]))
            print(f"depth {depth} seed {seed} done at {time.perf_counter() - start:.0f} s",
                  flush=True)

    print(f"\npbmc68k_reduced counts {full.shape}, grid {grid}, seeds 0..{args.seeds - 1}, "
          f"splits {args.splits}; total {time.perf_counter() - start:.0f} s\n")
    for kind, ref in excess:
        print(f"### loss={kind!r}, reference: {ref}\n")
        print("| depth | best ranks (reference) | "
              + " | ".join(f"p={p}: mean % worse (max) / ranks" for p in args.splits) + " |")
        print("|---|---|" + "---|" * len(args.splits))
        for depth in args.depths:
            cells = []
            for p in args.splits:
                values = np.array([e for e, _ in excess[kind, ref][depth][p]]) * 100
                ranks = ",".join(str(r) for _, r in excess[kind, ref][depth][p])
                cells.append(f"{values.mean():.2f} ({values.max():.2f}) / {ranks}")
            best = ",".join(str(r) for r in best_ranks[kind, ref][depth])
            print(f"| {depth:g} | {best} | " + " | ".join(cells) + " |")
        overall = [np.mean([e for d in args.depths for e, _ in excess[kind, ref][d][p]]) * 100
                   for p in args.splits]
        print("| all | | " + " | ".join(f"**{v:.2f}**" for v in overall) + " |\n")


if __name__ == "__main__":
    main()
