"""
==========================================================
Choosing the PCA rank of single-cell counts without truth
==========================================================

scanpy's bundled ``pbmc68k_reduced`` (700 cells x 765 genes) stores log-normalised
values; the integer UMI counts come back exactly. We thin them binomially to 15 % of
their depth, denoise the thinned counts with library-size normalisation + PCA, and
choose the rank three ways:

- Noise2Self: ``GridSearchCV`` with :class:`~sklearn_n2s.SelfSupervisedScorer`; each
  gene group is predicted from the other genes (:class:`~sklearn_n2s.table.LowRankDenoiser`);
- molecular cross-validation (:class:`~sklearn_n2s.table._mcv.MolecularCrossValidationScorer`,
  Poisson loss, 90 % of the molecules for fitting);
- the truth available only here: the full-depth data, normalised the same way.

Run ``python examples/plot_single_cell_rank.py --help`` for smaller, faster settings;
``N2S_EXAMPLE_SMALL=1`` shrinks it for the gallery smoke test. The figure is always saved
as a PNG file: ``--out``, else ``N2S_EXAMPLE_OUTPUT``, else ``single_cell_rank.png`` in
``N2S_EXAMPLES_OUT`` (default: the current directory).
"""
# requires: scanpy anndata

import argparse
import os
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sklearn_n2s import FullSplit, SelfSupervisedScorer
from sklearn_n2s.io import counts_from_log_normalized
from sklearn_n2s.model_selection import MolecularCrossValidationScorer
from sklearn_n2s.table import (
    LibrarySizeNormalizer,
    LowRankDenoiser,
    NormalizedDenoiser,
)


def load_counts(max_cells, max_genes):
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = counts_from_log_normalized(sc.datasets.pbmc68k_reduced())
    counts = counts[:max_cells, :max_genes]
    return counts[counts.sum(1) > 0]


def curves(counts, depth, grid, seed):
    thinned = np.random.default_rng(seed).binomial(counts.astype(np.int64), depth)
    kept = thinned.sum(1) > 0  # a cell with no molecule left has no library size
    thinned, full = thinned[kept], counts[kept]
    truth = np.log1p(full / full.sum(1, keepdims=True) * 1e4)
    pipe = Pipeline([("norm", LibrarySizeNormalizer(target_sum=1e4)),
                     ("pca", LowRankDenoiser(random_state=0))])
    n2s = GridSearchCV(pipe, {"pca__n_components": grid}, scoring=SelfSupervisedScorer(),
                       cv=KFold(3, shuffle=True, random_state=0)).fit(thinned)
    mcv = GridSearchCV(
        NormalizedDenoiser(LowRankDenoiser(random_state=0), target_sum=1e4, output="counts"),
        {"denoiser__n_components": grid}, cv=FullSplit(),
        scoring=MolecularCrossValidationScorer(p=0.9, loss="poisson")).fit(thinned)
    truth_loss = [
        np.mean((pipe.set_params(pca__n_components=k).fit(thinned).transform(thinned)
                 - truth) ** 2) for k in grid
    ]
    return {
        "Noise2Self (column groups)": -n2s.cv_results_["mean_test_score"],
        "MCV (Poisson, p=0.9)": -mcv.cv_results_["mean_test_score"],
        "truth (full depth)": np.array(truth_loss),
    }


def plot(grid, losses, out):
    fig, axes = plt.subplots(1, len(losses), figsize=(4 * len(losses), 3.2))
    for ax, (name, values) in zip(axes, losses.items()):
        best = grid[int(np.argmin(values))]
        ax.plot(grid, values, "o-")
        ax.axvline(best, color="k", ls="--", lw=1)
        ax.set(title=f"{name}\nbest rank {best}", xlabel="rank", xscale="log")
    axes[0].set_ylabel("loss (lower is better)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Rank of PCA denoising chosen without truth.")
    parser.add_argument("--depth", type=float, default=0.15)
    small = os.environ.get("N2S_EXAMPLE_SMALL") == "1"
    parser.add_argument("--grid", type=int, nargs="+",
                        default=[1, 3, 8] if small else [1, 2, 3, 4, 6, 8, 12, 16, 24])
    parser.add_argument("--max-cells", type=int, default=150 if small else 700)
    parser.add_argument("--max-genes", type=int, default=200 if small else 765)
    parser.add_argument("--seed", type=int, default=0)
    default_out = os.path.join(os.environ.get("N2S_EXAMPLES_OUT", "."), "single_cell_rank.png")
    parser.add_argument("--out", default=os.environ.get("N2S_EXAMPLE_OUTPUT", default_out))
    args = parser.parse_args(argv)
    counts = load_counts(args.max_cells, args.max_genes)
    losses = curves(counts, args.depth, args.grid, args.seed)
    plot(args.grid, losses, args.out)
    for name, values in losses.items():
        print(f"{name:28s} best rank {args.grid[int(np.argmin(values))]}")
    print(f"figure saved to {args.out}")
    return losses


if __name__ == "__main__":
    main()
