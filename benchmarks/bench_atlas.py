"""Atlas scale: LowRankDenoiserCV on a million cells, in memory and from a zarr store.

Data: ``--cells x --genes`` Poisson counts from a rank-``--rank`` gamma model, about 9 %
non-zero, float32 CSR, seeded; built once and cached with ``scipy.sparse.save_npz``
under ``--cache`` (default /tmp/sklearn_n2s_atlas; never in the repository). Each
method runs in its own process, which loads the matrix (``load_npz``) and then fits;
time and peak RSS (sampled every 50 ms, and ``ru_maxrss`` when the fit raised it) are per
process, and "RSS with data" is the RSS just after loading, so "added" is what the fit
costs on top of holding the matrix.

- ``before``: ``LowRankDenoiserCV`` as committed in 526df2e (the code this work
  replaced: a copy of each fold, ten held-out products per fold), loaded from git;
- ``now``: ``LowRankDenoiserCV(grid, cv=3, random_state=0, n_jobs=--n-jobs)``;
- ``dask`` (``--dask``): the same estimator on ``dask.array.from_zarr`` of a zarr store
  of row chunks (dense float32, ``--chunk-rows`` rows a chunk, written once from the
  cache), read one chunk at a time: peak RSS against the matrix's own size.

Run::

    .venv/bin/python benchmarks/bench_atlas.py                    # 200,000 cells
    .venv/bin/python benchmarks/bench_atlas.py --cells 1000000 --skip-before --dask
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import scipy.sparse as sp

BEFORE_COMMIT = "526df2e"
DEFAULT_GRID = [2, 4, 6, 8, 10, 15, 20, 30]


def data_path(args):
    return os.path.join(args.cache, f"counts_{args.cells}x{args.genes}_r{args.rank}.npz")


def zarr_path(args):
    return os.path.join(args.cache, f"counts_{args.cells}x{args.genes}_r{args.rank}"
                                    f"_c{args.chunk_rows}.zarr")


def make_counts(n_cells, n_genes, rank, *, density=0.09, seed=0):
    """Float32 CSR Poisson counts from a rank-``rank`` gamma model (``density`` non-zero)."""
    rng = np.random.default_rng(seed)
    loadings = rng.gamma(0.6, 1.0, (rank, n_genes))
    sample = rng.gamma(0.6, 1.0, (2000, rank)) @ loadings
    low, high = 1e-6, 10.0
    for _ in range(50):  # the scale that gives about `density` non-zero entries
        scale = np.sqrt(low * high)
        fraction = np.mean(1 - np.exp(-scale * sample))
        low, high = (scale, high) if fraction < density else (low, scale)
    blocks = []
    for start in range(0, n_cells, 5000):
        rows = min(5000, n_cells - start)
        rates = scale * (rng.gamma(0.6, 1.0, (rows, rank)) @ loadings)
        blocks.append(sp.csr_matrix(rng.poisson(rates).astype(np.float32)))
    return sp.vstack(blocks, format="csr")


def ensure_data(args):
    os.makedirs(args.cache, exist_ok=True)
    path = data_path(args)
    if not os.path.exists(path):
        start = time.perf_counter()
        sp.save_npz(path, make_counts(args.cells, args.genes, args.rank), compressed=False)
        print(f"built {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def ensure_zarr(args):
    import zarr

    path = zarr_path(args)
    if not os.path.exists(path):
        X = sp.load_npz(data_path(args)).tocsr()
        store = zarr.open_array(path, mode="w", shape=X.shape, dtype="float32",
                                chunks=(args.chunk_rows, X.shape[1]))
        for start in range(0, X.shape[0], args.chunk_rows):
            store[start:start + args.chunk_rows] = X[start:start + args.chunk_rows].toarray()
        del X
    return path


class PeakRSS:
    """Peak resident memory: ``ru_maxrss`` plus a sampling thread (reset-free)."""

    def __init__(self):
        self.peak = 0
        self._maxrss_before = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            with open("/proc/self/statm") as f:
                self.peak = max(self.peak, int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))

    def start_fit(self):
        """Forget the peak of loading; ``ru_maxrss`` counts only if the fit raises it."""
        self.peak = 0
        self._maxrss_before = maxrss_bytes()

    def gib(self):
        # ru_maxrss survives fork + exec on Linux: a worker forked from a parent that
        # had just built the matrix reports the parent's peak (2.85 GiB at 1M cells on
        # 16:22, where the fit alone adds 0.48). Use it only when the fit set it.
        maxrss = maxrss_bytes()
        counted = maxrss if maxrss > self._maxrss_before else 0
        return max(self.peak, counted) / 2**30


def maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_gib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def load_before():
    """``LowRankDenoiserCV`` as of BEFORE_COMMIT, as a module inside the package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:sklearn_n2s/table/_lowrank.py"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "_lowrank_before.py")
    with open(path, "w") as f:
        f.write(source)
    import sklearn_n2s.table  # noqa: F401  (the parent package of the loaded module)

    spec = importlib.util.spec_from_file_location("sklearn_n2s.table._lowrank_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LowRankDenoiserCV


def worker(args):
    monitor = PeakRSS()
    if args.worker == "dask":
        import dask.array as da

        X = da.from_zarr(zarr_path(args))
        matrix_gib = X.nbytes / 2**30
    else:
        X = sp.load_npz(data_path(args)).tocsr()
        matrix_gib = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**30
    if args.worker == "before":
        model = load_before()(args.grid, cv=args.folds, random_state=0)
    else:
        from sklearn_n2s.table import LowRankDenoiserCV

        model = LowRankDenoiserCV(args.grid, cv=args.folds, random_state=0,
                                  n_jobs=args.n_jobs)
    time.sleep(0.2)
    rss_data = rss_gib()  # data and imports: what the fit starts from
    monitor.start_fit()
    start = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - start
    result = {"method": args.worker, "seconds": seconds, "rank": int(model.n_components_),
              "losses": model.mean_losses_.tolist(), "rss_data_gib": rss_data,
              "rss_peak_gib": monitor.gib(), "matrix_gib": matrix_gib,
              "dtype": str(model.components_.dtype)}
    if args.worker != "before":
        # transform keeps float32 (first rows only, or lazily for dask)
        head = X[:1000]
        out = model.transform(head)
        result["transform_dtype"] = str(out.dtype)
    print("RESULT " + json.dumps(result), flush=True)


def launch(method, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", method,
               "--cells", str(args.cells), "--genes", str(args.genes), "--rank",
               str(args.rank), "--folds", str(args.folds), "--n-jobs", str(args.n_jobs),
               "--cache", args.cache, "--chunk-rows", str(args.chunk_rows),
               "--grid", *map(str, args.grid)]
    env = dict(os.environ, **{name: str(args.blas_threads) for name in
                              ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr or done.stdout)[-800:].strip().replace("\n", " | ")
    return {"method": method, "error": f"exit code {done.returncode}: {tail}"}


def report(results, args):
    names = {"before": f"LowRankDenoiserCV at {BEFORE_COMMIT} (before)",
             "now": f"LowRankDenoiserCV, n_jobs={args.n_jobs}",
             "dask": f"LowRankDenoiserCV on dask/zarr ({args.chunk_rows}-row chunks), "
                     f"n_jobs={args.n_jobs}"}
    lines = [f"{args.cells:,} cells x {args.genes:,} genes, true rank {args.rank}, "
             f"float32 CSR; grid {args.grid}; {args.folds} folds; BLAS threads "
             f"{args.blas_threads}", "",
             "| method | fit (s) | peak RSS (GiB) | RSS with data (GiB) | added by fit (GiB) "
             "| matrix (GiB) | picked rank |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {names[r['method']]} | crashed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {names[r['method']]} | {r['seconds']:.1f} | {r['rss_peak_gib']:.2f} "
                     f"| {r['rss_data_gib']:.2f} | {r['rss_peak_gib'] - r['rss_data_gib']:.2f} "
                     f"| {r['matrix_gib']:.2f} | {r['rank']} |")
    ok = {r["method"]: r for r in results if "error" not in r}
    for r in ok.values():
        lines.append(f"{names[r['method']]} loss by rank: " + ", ".join(
            f"{k}: {v:.6f}" for k, v in zip(args.grid, r["losses"])))
    if "before" in ok and "now" in ok:
        b, n = ok["before"], ok["now"]
        diff = np.max(np.abs(np.array(n["losses"]) / np.array(b["losses"]) - 1))
        lines.append(f"now / before: time {n['seconds'] / b['seconds']:.2f}x, added memory "
                     f"{(n['rss_peak_gib'] - n['rss_data_gib']):.2f} vs "
                     f"{(b['rss_peak_gib'] - b['rss_data_gib']):.2f} GiB; same rank: "
                     f"{n['rank'] == b['rank']}; largest relative loss difference {diff:.1e}")
    if "dask" in ok and "now" in ok:
        lines.append(f"dask picks the in-memory rank: {ok['dask']['rank'] == ok['now']['rank']}")
    lines.append("uptime: " + subprocess.run(["uptime"], capture_output=True,
                                             text=True).stdout.strip())
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--rank", type=int, default=6)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--grid", type=int, nargs="+", default=DEFAULT_GRID)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--cache", default="/tmp/sklearn_n2s_atlas")
    parser.add_argument("--skip-before", action="store_true",
                        help="leave out the code this work replaced (slow at 1M cells)")
    parser.add_argument("--dask", action="store_true",
                        help="also calibrate from a zarr store of row chunks")
    parser.add_argument("--methods", nargs="+", choices=["before", "now", "dask"],
                        help="run these only (default: before, now, and dask with --dask)")
    parser.add_argument("--worker", choices=["before", "now", "dask"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    print("uptime at start: " + subprocess.run(["uptime"], capture_output=True,
                                               text=True).stdout.strip(), flush=True)
    ensure_data(args)
    methods = args.methods or (([] if args.skip_before else ["before"]) + ["now"]
                               + (["dask"] if args.dask else []))
    if "dask" in methods:
        ensure_zarr(args)
    results = []
    for method in methods:
        results.append(launch(method, args))
        print(json.dumps(results[-1]), flush=True)
    print(report(results, args))


if __name__ == "__main__":
    main()
