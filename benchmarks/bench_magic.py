"""sklearn_n2s.table.denoise against MAGIC (magic-impute, at its defaults).

Data
----
- ``pbmc68k``: scanpy's bundled ``pbmc68k_reduced()`` (offline). It holds no raw
  counts, but ``.raw.X`` is ``log1p(counts / n_counts * 1e4)``, so the integer UMI
  counts come back exactly (``sklearn_n2s.io.counts_from_log_normalized``): 700 cells
  x 765 genes (the genes scanpy kept in ``.raw``, not the full transcriptome).
- ``synthetic``: 100,000 cells x 1,000 genes of Poisson counts with known rates
  (``bench_knn.SyntheticCounts``: 20 cell types, continuous rank-3 variation,
  log-normal library sizes, about 9 % non-zero), sparse CSR.

Protocol
--------
The counts X are split once by molecular cross-validation
(``molecular_split(X, p=0.9, random_state=0)``, the scorer's default split) into A
(90 %) and B. Each method sees A only and returns expected counts for A, and expected
square-root counts for A; the losses are then those of
``MolecularCrossValidationScorer`` (``benchmarks`` compute them with its functions):

- MCV Poisson: mean Poisson deviance of ``counts(A) * p_b / p_a`` against B;
- MCV sqrt: mean squared error of ``convert_sqrt_expectation(sqrt(A), p_a, p_b)``
  against ``sqrt(B)``;
- synthetic only, against the truth: the same outputs brought to full depth
  (``counts / p_a``; ``convert_sqrt_expectation(., p_a, 1)``) against the rates
  ``lam`` (MSE) and against ``E[sqrt(Poisson(lam))]`` (MSE).

Methods (each in its own process: wall time of the method, data loading and imports
excluded (the imports' time is printed with each row), and its CPU time (all the
process's threads: less moved than the wall time by other jobs on a shared machine);
peak RSS of the process and the RSS it added over the loaded data):

- ``n2s auto``: ``sklearn_n2s.table.denoise(adata, method='auto', output='counts')`` at
  its defaults — square-root normalisation, the low-rank and the diffusion curves by the
  column-partition loss, the lower one kept (``--n2s-method``, ``--n2s-transform`` pick
  another family or ``log1p``; ``--n2s-kwargs`` passes more of ``denoise``'s keyword
  arguments as JSON). The layer holds expected counts: with the square root,
  the Poisson means whose expected roots are the denoised roots
  (``mean_from_expected_sqrt``, since 2026-11-29 20:00; before, the squared roots);
  square-root output: ``E[sqrt(Poisson(counts))]`` of the layer (the denoised roots
  themselves, up to the table's 1e-4), read off after the timing (since 2026-11-29
  21:00; an evaluation step, as the losses are: ``denoise(adata, output='counts')``
  and the AnnData it writes to are timed).
- ``MAGIC``: ``magic.MAGIC()`` with every default (knn=5, decay=1, t=3,
  n_pca=100, solver='exact') on the preprocessing its tutorial uses (library size
  normalised to the median, then square root: ``scprep.normalize
  .library_size_normalize`` + ``scprep.transform.sqrt``); its output M is mapped back
  to each cell as ``M * sqrt(size / median)`` (square-root counts) and
  ``M**2 * size / median`` (counts). A second MAGIC row, "counts as ours", reads
  the same roots as ours are read (counts = the Poisson means whose expected roots
  they are): the same square-root losses, and what our mapping would give MAGIC.

MAGIC lives in its own virtual environment, never in the package's dependencies::

    python3 -m venv /tmp/venv-magic && /tmp/venv-magic/bin/pip install magic-impute "numpy<2"

(``--install-magic`` runs exactly that.)

- ``scVI`` (``--methods n2s,magic,scvi``): ``scvi.model.SCVI`` at its defaults
  (zero-inflated negative binomial, 10 latent dimensions, one hidden layer of 128),
  trained on CPU for scVI's default number of epochs (``min(round(20000 / n_cells *
  400), 400)``: 400 up to 20,000 cells, 80 at 100,000; ``--scvi-max-epochs`` sets
  another), then ``get_normalized_expression()`` (the decoder's mean frequencies at
  the latent posterior mean) times each cell's library size in A: expected counts.
  Its square roots are read as ours are: the Poisson expected roots of those counts.
  In its own virtual environment too (``--install-scvi`` runs exactly this; torch
  pinned first so that pip takes the CPU build, not several GB of CUDA wheels;
  scvi-tools 1.4.2 is the last release for Python 3.11, 1.4.3 and later need 3.12)::

    python3 -m venv /tmp/venv-scvi && /tmp/venv-scvi/bin/pip install torch==2.13.0
    /tmp/venv-scvi/bin/pip install scvi-tools==1.4.2

- DCA is not run: ``dca`` 0.3.4 (its last release, 2021) requires
  ``tensorflow>=2.0,<2.5`` and ``keras>=2.4,<2.6``, for which PyPI has no wheels for
  Python 3.11 (TensorFlow 2.0-2.4 were built for Python 3.5-3.8; the oldest for 3.11
  is 2.12), and its code imports ``keras.engine.topology`` and ``keras.objectives``,
  which the Keras of TensorFlow >= 2.12 no longer has: it installs only on a Python
  3.8 interpreter, which this machine does not have.

Every worker runs on ``--threads`` BLAS/OpenMP threads (default 1, the protocol of
``benchmarks/results/magic.md``, also ``torch.set_num_threads`` for scVI; 0 leaves
the environment's).

Run::

    .venv/bin/python benchmarks/bench_magic.py                       # both data sets
    .venv/bin/python benchmarks/bench_magic.py --data pbmc68k         # seconds
    .venv/bin/python benchmarks/bench_magic.py --n-cells 10000        # smaller synthetic
    .venv/bin/python benchmarks/bench_magic.py --methods n2s,magic,scvi --install-scvi
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
MAGIC_PYTHON = "/tmp/venv-magic/bin/python"
SCVI_PYTHON = "/tmp/venv-scvi/bin/python"
P_SPLIT = 0.9


def rss_gib():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


class PeakRSS:
    """Peak RSS of the method: sampled every 50 ms, and ``ru_maxrss`` only when the
    method raised it (Linux keeps the parent's peak across fork + exec: a worker
    started by a driver holding big arrays would report the driver's)."""

    def __init__(self):
        import threading

        self.peak = rss_gib()
        self.before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_gib())

    def gib(self):
        self._stop.set()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return max(self.peak, maxrss if maxrss > self.before else 0.0)


# ------------------------------------------------------------------ workers
def run_n2s(A, args):
    import anndata

    from sklearn_n2s.table import denoise

    adata = anndata.AnnData(A)
    denoise(adata, method=args.n2s_method, layer="X", output="counts",
            transform=args.n2s_transform, random_state=0, **json.loads(args.n2s_kwargs))
    counts = np.asarray(adata.layers["denoised"])
    record = adata.uns["n2s"]
    info = {"method_chosen": record["method"],
            "params": {k: (int(v) if float(v).is_integer() else round(float(v), 3))
                       for k, v in record["params"].items()}}
    for family in ("lowrank", "diffusion", "knn"):
        if family in adata.uns["n2s"]:
            curve = adata.uns["n2s"][family]
            info[family] = dict(zip(map(int, curve["values"]), map(float, curve["loss"])))
    return counts, None, info  # roots: read off the counts by the worker, untimed


def expected_roots(counts):
    """The expected roots of our layer's expected counts (Poisson means): what the
    square-root losses score, computed after the timing (an evaluation step, like
    the losses; MAGIC's roots are its own output)."""
    from sklearn_n2s.table._mcv import expected_sqrt

    roots = np.empty_like(counts)
    for start in range(0, len(counts), 5000):
        roots[start:start + 5000] = expected_sqrt(counts[start:start + 5000])
    return roots


def run_magic(A, args):
    import magic
    import scprep

    size = np.asarray(A.sum(axis=1)).ravel()
    median = float(np.median(size))
    normalised = scprep.transform.sqrt(scprep.normalize.library_size_normalize(
        A, rescale=median))
    M = np.asarray(magic.MAGIC(random_state=0, verbose=0).fit_transform(normalised))
    roots = M * np.sqrt(size / median)[:, None]
    return roots**2, roots, {"params": "defaults"}


def run_scvi(A, args):
    """scVI at its defaults: ``SCVI(adata)`` (zero-inflated negative binomial, 10
    latent dimensions, one hidden layer of 128), ``train()`` at its default epochs
    (``min(round(20000 / n_cells * 400), 400)``: 400 up to 20,000 cells, 80 at
    100,000; 90 % of the cells for training, no early stopping) on CPU, then
    ``get_normalized_expression()`` (the decoder's mean frequencies at the posterior
    mean of the latent, ``library_size=1``) times each cell's observed library size of
    A: expected counts, read as ours are (roots: their Poisson expected roots, by the
    driver)."""
    import anndata
    import scvi
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    scvi.settings.seed = 0
    scvi.settings.dl_num_workers = 0
    adata = anndata.AnnData(A.astype(np.float32))
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata)
    model.train(max_epochs=args.scvi_max_epochs, accelerator="cpu",
                enable_progress_bar=False)
    frequencies = np.asarray(model.get_normalized_expression(return_numpy=True))
    counts = frequencies * np.asarray(A.sum(axis=1)).ravel()[:, None]
    epochs = len(model.history["elbo_train"])
    return counts, "driver", {"params": f"defaults, {epochs} epochs",
                              "epochs": int(epochs)}


def worker(args):
    A = sp.load_npz(args.input).tocsr().astype(np.float32)
    # Imports are timed apart (scikit-learn alone takes seconds on a busy machine).
    t = time.perf_counter()
    if args.worker == "magic":
        import magic  # noqa: F401
        import scprep  # noqa: F401
    elif args.worker == "scvi":
        import anndata
        import scvi  # noqa: F401
    else:
        import anndata  # noqa: F401

        import sklearn_n2s.table  # noqa: F401
    import_seconds = time.perf_counter() - t
    loaded = rss_gib()
    monitor = PeakRSS()
    cpu = time.process_time()
    t = time.perf_counter()
    run = {"magic": run_magic, "scvi": run_scvi, "n2s": run_n2s}[args.worker]
    counts, roots, info = run(A, args)
    seconds = time.perf_counter() - t
    cpu_seconds = time.process_time() - cpu  # all the process's threads
    peak = monitor.gib()
    if roots is None:
        roots = expected_roots(counts)
    np.save(Path(args.out) / "counts.npy", counts.astype(np.float32))
    if isinstance(roots, str):  # no sklearn_n2s in this venv: the driver reads them
        (Path(args.out) / "roots.npy").unlink(missing_ok=True)
    else:
        np.save(Path(args.out) / "roots.npy", roots.astype(np.float32))
    info.update(seconds=seconds, cpu_seconds=cpu_seconds, import_seconds=import_seconds,
                peak_gib=peak, loaded_gib=loaded)
    (Path(args.out) / "info.json").write_text(json.dumps(info))


# ------------------------------------------------------------------ driver
def load_data(name, n_cells, n_genes):
    if name == "pbmc68k":
        import scanpy as sc

        from sklearn_n2s.io import counts_from_log_normalized

        X = sp.csr_matrix(counts_from_log_normalized(sc.datasets.pbmc68k_reduced()))
        return X, None
    sys.path.insert(0, str(HERE))
    from bench_knn import SyntheticCounts

    model = SyntheticCounts(n_cells, n_genes)
    return model.counts(dtype=np.float64), model


def losses(counts, roots, B, model, keep, p_a, p_b):
    from sklearn_n2s.table._column_masking import elementwise_loss
    from sklearn_n2s.table._mcv import convert_sqrt_expectation, expected_sqrt

    n_entries = B.shape[0] * B.shape[1]
    out = dict(mcv_poisson=0.0, mcv_sqrt=0.0, truth_rate=0.0, truth_sqrt=0.0)
    for start in range(0, B.shape[0], 5000):
        rows = slice(start, min(start + 5000, B.shape[0]))
        target = B[rows].toarray()
        c, r = counts[rows].astype(np.float64), roots[rows].astype(np.float64)
        out["mcv_poisson"] += float(np.sum(elementwise_loss(
            "poisson", c * (p_b / p_a), target))) / n_entries
        out["mcv_sqrt"] += float(np.sum(
            (convert_sqrt_expectation(r, p_a, p_b) - np.sqrt(target)) ** 2)) / n_entries
        if model is not None:
            lam = model.rates(keep[rows])
            out["truth_rate"] += float(np.sum((c / p_a - lam) ** 2)) / n_entries
            out["truth_sqrt"] += float(np.sum(
                (convert_sqrt_expectation(r, p_a, 1.0) - expected_sqrt(lam)) ** 2)) / n_entries
    if model is None:
        del out["truth_rate"], out["truth_sqrt"]
    return out


def mean_from_roots(roots):
    from sklearn_n2s.table import mean_from_expected_sqrt

    out = np.empty(roots.shape, dtype=np.float32)
    for start in range(0, len(roots), 5000):
        out[start:start + 5000] = mean_from_expected_sqrt(
            np.maximum(np.asarray(roots[start:start + 5000], dtype=np.float32), 0))
    return out


def run_worker(kind, path, folder, args):
    python = {"magic": args.magic_python, "scvi": args.scvi_python}.get(kind, sys.executable)
    folder.mkdir(parents=True, exist_ok=True)
    command = [python, str(Path(__file__).resolve()), "--worker", kind, "--input", str(path),
               "--out", str(folder), "--n2s-method", args.n2s_method,
               "--n2s-transform", args.n2s_transform, "--threads", str(args.threads),
               "--n2s-kwargs", args.n2s_kwargs]
    if args.scvi_max_epochs is not None:
        command += ["--scvi-max-epochs", str(args.scvi_max_epochs)]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    if args.threads:  # the protocol: every method on the same number of BLAS threads
        env.update({name: str(args.threads) for name in (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    if kind != "n2s":
        env.pop("PYTHONPATH")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    info = json.loads((folder / "info.json").read_text())
    counts = np.load(folder / "counts.npy", mmap_mode="r")
    roots = folder / "roots.npy"
    return (counts, np.load(roots, mmap_mode="r") if roots.exists()
            else expected_roots(np.asarray(counts)), info)


def bench(name, args):
    from sklearn_n2s.table import molecular_split

    X, model = load_data(name, args.n_cells, args.n_genes)
    A, B = molecular_split(X, P_SPLIT, random_state=0)
    keep = np.flatnonzero(np.asarray(A.sum(axis=1)).ravel() > 0)  # cells with counts in A
    A, B, X = A[keep], B[keep], X[keep]
    work = Path(args.work) / name
    work.mkdir(parents=True, exist_ok=True)
    sp.save_npz(work / "A.npz", A)
    rows = []
    for kind in args.methods.split(","):
        counts, roots, info = run_worker(kind, work / "A.npz", work / kind, args)
        scores = losses(counts, roots, B, model, keep, P_SPLIT, 1 - P_SPLIT)
        rows.append(dict(method=kind, **scores, **info))
        print(name, {k: v for k, v in rows[-1].items()}, flush=True)
        if kind == "magic":
            # MAGIC's roots read as ours are: counts = the Poisson means whose expected
            # roots they are (not their squares), for a like-for-like comparison
            means = mean_from_roots(roots)
            scores = losses(means, roots, B, model, keep, P_SPLIT, 1 - P_SPLIT)
            rows.append(dict(rows[-1], method="magic, counts as ours", **scores))
            print(name, {k: v for k, v in rows[-1].items()}, flush=True)
    density = X.nnz / (X.shape[0] * X.shape[1])
    return name, X.shape, density, rows


def seconds(value):
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table(name, shape, density, rows):
    magic = next((r for r in rows if r["method"] == "magic"), None)
    keys = ["mcv_poisson", "mcv_sqrt"] + (["truth_rate", "truth_sqrt"]
                                          if "truth_rate" in rows[0] else [])
    heads = {"mcv_poisson": "MCV Poisson", "mcv_sqrt": "MCV sqrt MSE",
             "truth_rate": "truth: rate MSE", "truth_sqrt": "truth: sqrt MSE"}
    lines = [f"**{name}**: {shape[0]:,} cells x {shape[1]:,} genes, {density:.1%} non-zero; "
             f"split p={P_SPLIT}", "",
             "| method | " + " | ".join(heads[k] for k in keys)
             + " | time (s) | CPU (s) | peak RSS (GiB) | added over data (GiB) | pick |",
             "|---|" + "---:|" * (len(keys) + 4) + "---|"]
    for r in rows:
        ratio = ((lambda k, r=r: f" ({r[k] / magic[k]:.3f})") if magic
                 else (lambda k: ""))
        pick = (f"{r['method_chosen']} {r['params']}" if "method_chosen" in r
                else str(r.get("params", "")))
        lines.append(f"| {r['method']} | " + " | ".join(f"{r[k]:.5f}{ratio(k)}" for k in keys)
                     + f" | {seconds(r['seconds'])}{ratio('seconds')} | "
                     f"{seconds(r['cpu_seconds'])}{ratio('cpu_seconds')} | {r['peak_gib']:.2f} | "
                     f"{r['peak_gib'] - r['loaded_gib']:.2f} | {pick} |")
    curves = [f"- {r['method']} {fam} curve: " + ", ".join(f"{k}: {v:.5f}" for k, v in
                                                          r[fam].items())
              for r in rows for fam in ("lowrank", "diffusion", "knn") if fam in r]
    return "\n".join(lines + [""] + curves)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="pbmc68k,synthetic")
    parser.add_argument("--n-cells", type=int, default=100_000)
    parser.add_argument("--n-genes", type=int, default=1000)
    parser.add_argument("--methods", default="n2s,magic")
    parser.add_argument("--n2s-method", default="auto")
    parser.add_argument("--n2s-transform", default="sqrt", choices=["log1p", "sqrt"])
    parser.add_argument("--n2s-kwargs", default="{}",
                        help="more keyword arguments of denoise, as JSON, e.g. "
                             "'{\"n_groups\": 4, \"diffusion_neighbors\": [5, 10, 20]}'")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads of both workers (0: the environment's; "
                             "on a shared 2-core machine, 2 threads made both methods "
                             "several times slower and their times erratic)")
    parser.add_argument("--magic-python", default=MAGIC_PYTHON)
    parser.add_argument("--install-magic", action="store_true")
    parser.add_argument("--scvi-python", default=SCVI_PYTHON)
    parser.add_argument("--install-scvi", action="store_true")
    parser.add_argument("--scvi-max-epochs", type=int, default=None,
                        help="scVI's training epochs (default: scVI's own heuristic, "
                             "400 up to 20,000 cells, 20000 / n_cells * 400 above)")
    parser.add_argument("--work", default="/tmp/n2s_bench_magic")
    parser.add_argument("--out", default=None, help="append the tables to this file")
    parser.add_argument("--worker", choices=["magic", "n2s", "scvi"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.install_magic and not os.path.exists(args.magic_python):
        venv = Path(args.magic_python).parent.parent
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "magic-impute", "numpy<2"],
                       check=True)  # magic-impute 3.0 pins pandas 2.0, built for numpy 1
    if args.install_scvi and not os.path.exists(args.scvi_python):
        venv = Path(args.scvi_python).parent.parent
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        pip = str(venv / "bin" / "pip")
        # torch pinned first: the CPU build (an unpinned torch pulls the CUDA wheels);
        # scvi-tools 1.4.2 is the last release for Python 3.11 (1.4.3+ need 3.12)
        subprocess.run([pip, "install", "torch==2.13.0"], check=True)
        subprocess.run([pip, "install", "scvi-tools==1.4.2"], check=True)
    methods = args.methods.split(",")
    if "magic" in methods and not os.path.exists(args.magic_python):
        raise SystemExit(f"no MAGIC interpreter at {args.magic_python}: pass "
                         "--install-magic, or --methods n2s")
    if "scvi" in methods and not os.path.exists(args.scvi_python):
        raise SystemExit(f"no scVI interpreter at {args.scvi_python}: pass "
                         "--install-scvi, or leave scvi out of --methods")
    results = [table(*bench(name, args)) for name in args.data.split(",")]
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    text = "\n\n".join(results) + f"\n\nuptime: {uptime}\n"
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
