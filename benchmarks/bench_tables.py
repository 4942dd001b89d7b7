"""Rank selection on a large sparse count matrix: GridSearchCV + Noise2Self vs scself MCV.

Data: ``n_cells x n_genes`` Poisson counts from a low-rank model (gamma factors, about
10 % non-zero), sparse CSR, seeded. Two methods choose the number of components from
the same grid on the same data, each in its own process (time and peak RSS measured
per process; the RSS includes the data):

- ``sklearn_n2s``: ``GridSearchCV(Pipeline([LibrarySizeNormalizer(1e4),
  LowRankDenoiser(randomized)]), grid, scoring=SelfSupervisedScorer(), cv=3 folds)``,
  refit on all rows included in the time;
- ``sklearn_n2s`` path: ``Pipeline([LibrarySizeNormalizer(1e4),
  LowRankDenoiserCV(grid, cv=<the same 3 folds>, randomized)])``: per fold one SVD at
  the largest rank, every rank scored off it, then the chosen rank refitted on all rows;
- ``scself.mcv(counts, n=1, n_pcs=max(grid), p=0.5)`` (log-normalisation, PCA, MCV by
  MSE; it evaluates every rank up to ``max(grid)`` from one PCA), rank = argmin on grid.

Both chosen ranks are then judged against the truth: the log-normalised clean rates of
the first ``--truth-rows`` cells, compared with the pipeline's output at each rank (one
fit at the largest rank, truncated; not timed).

Run (the full benchmark; a few minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_tables.py
    .venv/bin/python benchmarks/bench_tables.py --n-cells 5000 --n-genes 500  # smoke test
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

DEFAULT_GRID = [2, 4, 6, 8, 10, 15, 20, 30]
TARGET_SUM = 1e4


def make_counts(n_cells, n_genes, rank, *, density=0.1, truth_rows=0, seed=0,
                dtype=np.float64):
    """Sparse CSR Poisson counts from a rank-``rank`` gamma model, and the first rates."""
    rng = np.random.default_rng(seed)
    loadings = rng.gamma(0.6, 1.0, (rank, n_genes))
    # Scale so that about ``density`` of the entries are non-zero (fitted on a sample).
    sample = rng.gamma(0.6, 1.0, (2000, rank)) @ loadings
    low, high = 1e-6, 10.0
    for _ in range(50):
        scale = np.sqrt(low * high)
        fraction = np.mean(1 - np.exp(-scale * sample))
        low, high = (scale, high) if fraction < density else (low, scale)
    blocks, truth = [], []
    for start in range(0, n_cells, 5000):
        rows = min(5000, n_cells - start)
        rates = scale * (rng.gamma(0.6, 1.0, (rows, rank)) @ loadings)
        counts = rng.poisson(rates)
        if start < truth_rows:
            truth.append(rates[: truth_rows - start])
        blocks.append(sp.csr_matrix(counts.astype(dtype)))
    rates = np.vstack(truth) if truth else None
    return sp.vstack(blocks, format="csr"), rates


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_n2s(X, grid, folds):
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline

    from sklearn_n2s import SelfSupervisedScorer
    from sklearn_n2s.table import LibrarySizeNormalizer, LowRankDenoiser

    pipe = Pipeline([("norm", LibrarySizeNormalizer(target_sum=TARGET_SUM)),
                     ("pca", LowRankDenoiser(svd_solver="randomized", random_state=0))])
    search = GridSearchCV(pipe, {"pca__n_components": grid}, scoring=SelfSupervisedScorer(),
                          cv=KFold(folds, shuffle=True, random_state=0))
    search.fit(X)
    losses = (-search.cv_results_["mean_test_score"]).tolist()
    return search.best_params_["pca__n_components"], losses


def run_n2s_cv(X, grid, folds):
    from sklearn.model_selection import KFold
    from sklearn.pipeline import Pipeline

    from sklearn_n2s.table import LibrarySizeNormalizer, LowRankDenoiserCV

    path = LowRankDenoiserCV(grid, cv=KFold(folds, shuffle=True, random_state=0),
                             svd_solver="randomized", random_state=0)
    Pipeline([("norm", LibrarySizeNormalizer(target_sum=TARGET_SUM)),
              ("pca", path)]).fit(X)
    return path.n_components_, path.mean_losses_.tolist()


def run_scself(X, grid):
    import scself

    metric = scself.mcv(X, n=1, n_pcs=max(grid), p=0.5, silent=True)
    losses = [float(metric[0, k]) for k in grid]
    return grid[int(np.argmin(losses))], losses


def truth_curve(X, rates, grid):
    """Loss against the clean log-normalised rates of the first rows, for every rank."""
    from sklearn_n2s.table import LibrarySizeNormalizer, LowRankDenoiser

    norm = LibrarySizeNormalizer(target_sum=TARGET_SUM).fit(X)
    model = LowRankDenoiser(max(grid), svd_solver="randomized", random_state=0)
    model.fit(norm.transform(X))
    Z = norm.transform(X[: len(rates)]).toarray()
    truth = np.log1p(rates / rates.sum(1, keepdims=True) * TARGET_SUM)
    scores = (Z - model.mean_) @ model.components_.T
    curve = []
    for k in grid:
        denoised = model.mean_ + scores[:, :k] @ model.components_[:k]
        curve.append(float(np.mean((denoised - truth) ** 2)))
    return curve


def worker(args):
    warnings.filterwarnings("ignore")
    from threadpoolctl import threadpool_info

    blas_threads = {info["num_threads"] for info in threadpool_info()}
    grid = args.grid
    dtype = np.int64 if args.worker == "scself" else np.float64
    X, rates = make_counts(args.n_cells, args.n_genes, args.rank, seed=args.seed,
                           truth_rows=args.truth_rows if args.worker == "truth" else 0,
                           dtype=dtype)
    result = {"method": args.worker, "nnz_fraction": X.nnz / np.prod(X.shape),
              "blas_threads": sorted(blas_threads),
              "rss_data_gib": peak_rss_gib()}
    start = time.perf_counter()
    try:
        if args.worker == "n2s":
            result["rank"], result["losses"] = run_n2s(X, grid, args.folds)
        elif args.worker == "n2s_cv":
            result["rank"], result["losses"] = run_n2s_cv(X, grid, args.folds)
        elif args.worker == "scself":
            result["rank"], result["losses"] = run_scself(X, grid)
        else:
            result["truth"] = truth_curve(X, rates, grid)
    except Exception as exc:  # report a crash of the peer instead of dying
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = time.perf_counter() - start
    result["rss_peak_gib"] = peak_rss_gib()
    print("RESULT " + json.dumps(result))


def launch(method, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", method,
               "--n-cells", str(args.n_cells), "--n-genes", str(args.n_genes),
               "--rank", str(args.rank), "--folds", str(args.folds), "--seed", str(args.seed),
               "--truth-rows", str(args.truth_rows), "--blas-threads", str(args.blas_threads),
               "--grid", *map(str, args.grid)]
    # Same BLAS threads for every method, set before the worker starts; on the shared
    # 2-core machine OpenBLAS with 2 threads was 30x slower than with 1 on the small
    # dense products both methods make.
    env = dict(os.environ, **{name: str(args.blas_threads) for name in
                              ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr or done.stdout)[-600:].strip().replace("\n", " | ")
    return {"method": method, "error": f"exit code {done.returncode}: {tail}"}


def markdown(results, truth, args):
    best = args.grid[int(np.argmin(truth))] if truth else None
    lines = [
        f"{args.n_cells:,} cells x {args.n_genes:,} genes, true rank {args.rank}, "
        f"{results[0].get('nnz_fraction', float('nan')):.1%} non-zero; grid {args.grid}; "
        f"rank with the lowest loss against the clean data: {best}; "
        f"BLAS threads: {args.blas_threads}",
        "",
        "| method | time (s) | peak RSS (GiB) | RSS with data only (GiB) | chosen rank | "
        "truth loss at chosen rank / best |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"n2s": f"sklearn_n2s GridSearchCV ({args.folds}-fold, {len(args.grid)} ranks)",
             "n2s_cv": f"sklearn_n2s LowRankDenoiserCV ({args.folds}-fold, "
                       f"{len(args.grid)} ranks)",
             "scself": "scself.mcv (p=0.5, one split)"}
    for r in results:
        if "error" in r:
            lines.append(f"| {names[r['method']]} | – | – | – | crashed: {r['error']} | – |")
            continue
        ratio = truth[args.grid.index(r["rank"])] / min(truth) if truth else float("nan")
        lines.append(f"| {names[r['method']]} | {r['seconds']:.1f} | {r['rss_peak_gib']:.2f} | "
                     f"{r['rss_data_gib']:.2f} | {r['rank']} | {ratio:.4f} |")
    if truth:
        lines += ["", "Truth loss by rank: " + ", ".join(
            f"{k}: {v:.4f}" for k, v in zip(args.grid, truth))]
    for r in results:
        if "losses" in r:
            lines.append(f"{names[r['method']]} loss by rank: " + ", ".join(
                f"{k}: {v:.5f}" for k, v in zip(args.grid, r["losses"])))
    by_method = {r["method"]: r for r in results if "losses" in r}
    if "n2s" in by_method and "n2s_cv" in by_method:
        grid_losses = np.array(by_method["n2s"]["losses"])
        path_losses = np.array(by_method["n2s_cv"]["losses"])
        lines.append("LowRankDenoiserCV vs GridSearchCV, largest relative loss difference "
                     f"over the grid: {np.max(np.abs(path_losses / grid_losses - 1)):.2e}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=100_000)
    parser.add_argument("--n-genes", type=int, default=2_000)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truth-rows", type=int, default=5_000)
    parser.add_argument("--grid", type=int, nargs="+", default=DEFAULT_GRID)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--skip-scself", action="store_true")
    parser.add_argument("--skip-grid-search", action="store_true",
                        help="leave out the GridSearchCV row (the slowest)")
    parser.add_argument("--worker", choices=["n2s", "n2s_cv", "scself", "truth"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.truth_rows = min(args.truth_rows, args.n_cells)
    if args.worker:
        return worker(args)
    methods = (([] if args.skip_grid_search else ["n2s"]) + ["n2s_cv"]
               + ([] if args.skip_scself else ["scself"]))
    results = [launch(m, args) for m in methods]
    truth_result = launch("truth", args)
    truth = truth_result.get("truth")
    print(markdown(results, truth, args))


if __name__ == "__main__":
    main()
