"""Denoise a 16384 x 16384 float32 image (1 GiB, generated lazily) through dask into zarr.

Compares, in one run, the blockwise path (dask, threaded scheduler, ``--workers``
threads, written to a zarr store on disk with :func:`sklearn_n2s.io.write_denoised`)
with the in-memory path (numpy, one thread) on a ``--ref-size`` square crop of the same
image, and reports throughput (pixels/s) and peak resident memory of each phase.

The image is a smooth pattern plus Gaussian noise (sigma 0.3), generated chunk by chunk
from a fixed seed, so the 1 GiB input never exists in memory. The blockwise phases run
first, so the process-wide peak (``ru_maxrss``) measured after them is theirs alone;
a sampling thread (every 20 ms, /proc/self/statm) gives the peak of each phase.

    .venv/bin/python benchmarks/bench_dask.py            # full run (minutes)
    .venv/bin/python benchmarks/bench_dask.py --size 4096 --ref-size 2048   # quick

DonutMedian uses radius 2: on float data it sorts every neighbourhood (scipy's
rank_filter), which is slow at large radii for both paths alike.
"""

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
import warnings

import dask
import dask.array as da
import numpy as np
from dask.array.core import PerformanceWarning

from sklearn_n2s import DonutMedian, JInvariantGaussian
from sklearn_n2s.io import write_denoised

PAGE = os.sysconf("SC_PAGE_SIZE")
GIB = 2**30


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Sample the resident set size in a thread; ``peak`` is the largest value seen."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak = 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def lazy_image(size, chunk, seed=0):
    """Smooth pattern + N(0, 0.3) noise, float32, shape (1, size, size), never materialised."""
    axis = da.linspace(0.0, 1.0, size, chunks=chunk, dtype=np.float32)
    with warnings.catch_warnings():  # the outer product is meant to make size/chunk**2 chunks
        warnings.simplefilter("ignore", PerformanceWarning)
        clean = da.sin(6 * axis[None, :]) * da.cos(4 * axis[:, None])
    noise = da.random.default_rng(seed).standard_normal(
        (size, size), chunks=chunk, dtype=np.float32
    )
    return (clean + np.float32(0.3) * noise).astype(np.float32)[np.newaxis]


def estimators():
    return {
        "JInvariantGaussian(sigma=2)": JInvariantGaussian(sigma=2.0),
        "DonutMedian(radius=2)": DonutMedian(radius=2),
    }


def run_blockwise(estimator, size, chunk, workers, folder):
    X = lazy_image(size, chunk)
    estimator.fit(X[:, :64, :64].compute())
    path = os.path.join(folder, "out.zarr")
    with dask.config.set(scheduler="threads", num_workers=workers), PeakRSS() as peak:
        start = time.perf_counter()
        write_denoised(X, path, estimator, overwrite=True)
        seconds = time.perf_counter() - start
    shutil.rmtree(path)
    return seconds, peak.peak


def run_in_memory(estimator, size, chunk):
    X = lazy_image(size, chunk).compute(scheduler="threads")
    estimator.fit(X[:, :64, :64])
    with PeakRSS() as peak:
        start = time.perf_counter()
        estimator.transform(X)
        seconds = time.perf_counter() - start
    return seconds, peak.peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--ref-size", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default="shrink",
                        choices=["shrink", "invariant", "ordinary"])
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_dask_")
    rows = []
    try:
        blockwise = {}
        for name, est in estimators().items():
            est.set_params(output=args.output)
            blockwise[name] = run_blockwise(est, args.size, args.chunk, args.workers, folder)
        maxrss_after_blockwise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for name, est in estimators().items():
            est.set_params(output=args.output)
            mem_s, mem_peak = run_in_memory(est, args.ref_size, args.chunk)
            blk_s, blk_peak = blockwise[name]
            blk_rate = args.size**2 / blk_s
            mem_rate = args.ref_size**2 / mem_s
            rows.append((name, blk_s, blk_rate, blk_peak, mem_s, mem_rate, mem_peak,
                         mem_rate / blk_rate))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"output={args.output!r}; blockwise: {args.size}^2 float32 "
          f"({args.size**2 * 4 / GIB:.2f} GiB) in {args.chunk}^2 chunks, threaded scheduler "
          f"with {args.workers} workers, written to zarr on disk; in-memory: {args.ref_size}^2, "
          "one thread.\n")
    print("| estimator | blockwise s | blockwise Mpix/s | blockwise peak RSS GiB "
          "| in-memory s | in-memory Mpix/s | in-memory peak RSS GiB "
          "| in-memory / blockwise speed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, bs, br, bp, ms, mr, mp, ratio in rows:
        print(f"| {name} | {bs:.1f} | {br / 1e6:.2f} | {bp / GIB:.2f} | {ms:.2f} | "
              f"{mr / 1e6:.2f} | {mp / GIB:.2f} | {ratio:.2f} |")
    print(f"\nProcess peak RSS (ru_maxrss) after the blockwise phases: "
          f"{maxrss_after_blockwise / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
