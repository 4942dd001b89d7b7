"""KNNSmoother at 100,000 cells: per-group vs shared index, exact vs pynndescent.

Data (:func:`synthetic_counts`, also used by ``bench_magic.py``): ``n_cells x n_genes``
sparse Poisson counts with known rates: 20 cell types (gamma gene profiles), a
continuous within-type variation of rank 3, and a log-normal library size; about 9 %
non-zero. The smoother works on square-root counts (variance-stabilised, still sparse)
with per-group PCA embeddings (``n_components``) for the distances.

Every configuration smooths the same matrix; for each we report the time of the
J-invariant loss (neighbour searches included) and of ``transform``, the
self-supervised loss (MSE of the J-invariant prediction), the recall of the neighbour
lists against the exact per-group search (the reference), and the loss of
``transform`` against the truth, ``E[sqrt(Poisson(rate))]``.

Run::

    .venv/bin/python benchmarks/bench_knn.py                 # 100,000 x 1,000 (minutes)
    .venv/bin/python benchmarks/bench_knn.py --n-cells 10000 # smoke test
"""

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp


class SyntheticCounts:
    """Seeded cell-type + continuous Poisson model; rates recomputed on demand."""

    def __init__(self, n_cells, n_genes, *, n_types=20, rank=3, density=0.09, seed=0):
        rng = np.random.default_rng(seed)
        self.shape = (n_cells, n_genes)
        self.profiles = rng.gamma(0.5, 1.0, (n_types, n_genes))
        self.types = rng.integers(n_types, size=n_cells)
        self.scores = rng.normal(size=(n_cells, rank))
        self.loadings = rng.normal(scale=0.3, size=(rank, n_genes))
        self.library = rng.lognormal(0.0, 0.3, n_cells)
        self.scale = 1.0
        sample = self.rates(slice(0, min(n_cells, 2000)))
        low, high = 1e-6, 100.0
        for _ in range(60):  # scale so that about `density` of the entries are non-zero
            self.scale = np.sqrt(low * high)
            fraction = np.mean(1 - np.exp(-self.scale * sample))
            low, high = (self.scale, high) if fraction < density else (low, self.scale)
        self.scale = np.sqrt(low * high)
        self.seed = seed

    def rates(self, rows):
        """Poisson rates of the cells ``rows`` (a slice), dense float64."""
        base = self.profiles[self.types[rows]] * np.exp(self.scores[rows] @ self.loadings)
        return self.scale * self.library[rows, np.newaxis] * base

    def counts(self, dtype=np.float32):
        """The sparse CSR count matrix (drawn in blocks of 5,000 cells)."""
        rng = np.random.default_rng(self.seed + 1)
        blocks = []
        for start in range(0, self.shape[0], 5000):
            rows = slice(start, min(start + 5000, self.shape[0]))
            blocks.append(sp.csr_matrix(rng.poisson(self.rates(rows)).astype(dtype)))
        return sp.vstack(blocks, format="csr")


def truth_loss(output, model, transform):
    """Mean squared error of ``output`` against ``transform(rates)``, in row blocks."""
    total = 0.0
    for start in range(0, output.shape[0], 5000):
        rows = slice(start, min(start + 5000, output.shape[0]))
        total += float(np.sum((output[rows] - transform(model.rates(rows))) ** 2))
    return total / output.size


def recall(found, reference):
    """Share of the reference neighbours found, averaged over groups and rows."""
    shares = []
    for a, b in zip(found, reference):
        a, b = np.sort(a, axis=1), np.sort(b, axis=1)
        hits = sum(np.isin(a[i], b[i], assume_unique=True).sum() for i in range(len(a)))
        shares.append(hits / a.size)
    return float(np.mean(shares))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=100_000)
    parser.add_argument("--n-genes", type=int, default=1000)
    parser.add_argument("--n-neighbors", type=int, default=15)
    parser.add_argument("--n-groups", type=int, default=6)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--configs", default="per_group/exact,shared/exact,"
                                              "shared/nndescent,per_group/nndescent")
    parser.add_argument("--out", default=None, help="append the table to this markdown file")
    args = parser.parse_args(argv)

    from sklearn_n2s.table import KNNSmoother
    from sklearn_n2s.table._mcv import expected_sqrt

    model = SyntheticCounts(args.n_cells, args.n_genes)
    X = model.counts()
    X.data = np.sqrt(X.data)  # square-root counts, still sparse
    density = X.nnz / (X.shape[0] * X.shape[1])
    if "nndescent" in args.configs:  # pynndescent compiles on first use: not timed
        t = time.perf_counter()
        KNNSmoother(5, n_groups=2, algorithm="nndescent", search="shared").fit(
            X[:300]).self_supervised_loss(X[:300])
        compile_s = time.perf_counter() - t
    else:
        compile_s = float("nan")
    rows, reference = [], None
    for config in args.configs.split(","):
        search, algorithm = config.split("/")
        est = KNNSmoother(args.n_neighbors, n_groups=args.n_groups, search=search,
                          algorithm=algorithm, n_components=args.n_components,
                          random_state=0).fit(X)
        captured = []  # the neighbour lists the loss searched, kept for the recall
        search_lists = est._group_neighbour_lists
        est._group_neighbour_lists = (
            lambda X, only=None, keep=captured, search=search_lists:
            keep.append(search(X, only)) or keep[-1])
        t = time.perf_counter()
        loss = est.self_supervised_loss(X)
        loss_s = time.perf_counter() - t
        lists = captured[0]
        t = time.perf_counter()
        output = est.transform(X)
        transform_s = time.perf_counter() - t
        truth = truth_loss(output, model, expected_sqrt)
        del output
        if config == "per_group/exact":
            reference = lists
        rows.append(dict(config=config, loss_s=loss_s, transform_s=transform_s, loss=loss,
                         truth=truth, lists=lists, recall=None))
        print({k: v for k, v in rows[-1].items() if k != "lists"}, flush=True)
    for r in rows:
        if reference is not None:
            r["recall"] = recall(r["lists"], reference)

    base = next((r for r in rows if r['config'] == 'per_group/exact'), rows[0])
    lines = [
        f"{args.n_cells:,} cells x {args.n_genes:,} genes, {density:.1%} non-zero, "
        f"square-root counts; k={args.n_neighbors}, n_groups={args.n_groups}, "
        f"n_components={args.n_components} per group; pynndescent compile (untimed "
        f"below): {compile_s:.1f} s; peak RSS {peak_gib():.2f} GiB",
        "",
        "| search / algorithm | self-supervised loss, neighbour searches included (s) "
        "| transform (s) | self-supervised loss (/ per-group exact) | neighbour recall vs "
        "per-group exact | transform vs truth (MSE) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rec = "—" if r["recall"] is None else f"{r['recall']:.3f}"
        lines.append(f"| {r['config']} | {r['loss_s']:.1f} | "
                     f"{r['transform_s']:.1f} | {r['loss']:.5f} ({r['loss'] / base['loss']:.4f}) "
                     f"| {rec} | {r['truth']:.5f} |")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines += ["", f"uptime: {uptime}"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text + "\n")
    return 0


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


if __name__ == "__main__":
    sys.exit(main())
