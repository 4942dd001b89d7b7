"""Approximate nearest neighbours by clustering (an inverted-file search), in NumPy.

The rows are clustered by a few Lloyd iterations of k-means (about ``sqrt(n)``
clusters, seeded); the neighbours of the rows of a cluster are searched, by brute
force, among the rows of the ``n_probe`` clusters whose centres are nearest to its
own centre (itself included). Each cluster's distances are one matrix product, so
the search costs about ``n * n_probe * n / n_clusters`` distances instead of ``n^2``:
at 20,000 rows and 100 dimensions a tenth of scikit-learn's brute force, with no
compilation (pynndescent's first call in a process compiles for about a minute).

Everything is a deterministic function of ``features`` and the seed, so a graph built
from the columns outside a group J never depends on J (the J-invariance of
:class:`DiffusionSmoother` needs nothing more).
"""

import numpy as np

# Lloyd iterations of the clustering (on a sample of the rows): the search needs
# compact clusters, not converged ones.
_LLOYD_ITERATIONS = 8
# Rows sampled per cluster for the clustering.
_SAMPLE_PER_CLUSTER = 40
# Distances computed at once (float32 entries of one cluster's block).
_BLOCK_ENTRIES = 1 << 22
# Rows of the exact search's blocks: this many float64 distances at most (1 MB). A
# whole 700 x 700 block (3.9 MB, with its float32 copy and partition another 3.9 MB)
# was fresh pages at every search: a quarter of the search's time in page faults on
# pbmc68k, for the same products and selections row by row.
_EXACT_BLOCK_ENTRIES = 1 << 17


def _squared_distances(A, B, a2=None, b2=None):
    a2 = np.einsum("ij,ij->i", A, A) if a2 is None else a2
    b2 = np.einsum("ij,ij->i", B, B) if b2 is None else b2
    out = A @ B.T
    out *= -2
    out += a2[:, np.newaxis]
    out += b2[np.newaxis, :]
    return out


def kmeans_centres(features, n_clusters, rng):
    """Centres of a few Lloyd iterations from random rows of a sample (seeded)."""
    n = len(features)
    sample = features[rng.choice(n, min(n, n_clusters * _SAMPLE_PER_CLUSTER),
                                 replace=False)] if n > n_clusters * _SAMPLE_PER_CLUSTER \
        else features
    centres = sample[rng.choice(len(sample), n_clusters, replace=False)].copy()
    for _ in range(_LLOYD_ITERATIONS):
        label = np.argmin(_squared_distances(sample, centres), axis=1)
        counts = np.bincount(label, minlength=n_clusters)
        sums = np.zeros_like(centres)
        np.add.at(sums, label, sample)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, np.newaxis]
    return centres


def _sorted_exact(features, queries, chosen):
    """The chosen candidates of each query sorted by their exact distances (the
    expanded form of ``_squared_distances`` loses digits for near rows)."""
    diff = features[chosen] - features[queries][:, np.newaxis, :]
    exact = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff, dtype=np.float64))
    order = np.argsort(exact, axis=1, kind="stable")
    return np.take_along_axis(exact, order, axis=1), np.take_along_axis(chosen, order,
                                                                        axis=1)


def _smallest(values, width, nonnegative=False):
    """Column indices of the ``width`` smallest values of each row (unsorted).

    The k-th smallest value of every row by a partition of a float32 copy (no index
    array: half the time of ``argpartition``), then the entries at or below it; rows
    with ties at the k-th value (more entries than ``width``) take ``argpartition``.
    ``nonnegative`` values (no NaN) are partitioned as the integers of their float32
    bits, which order as the values do (a quarter faster than the float partition).
    """
    reduced = values.astype(np.float32, copy=False)
    if nonnegative:
        reduced = reduced.view(np.int32)
    kth = np.partition(reduced, width - 1, axis=1)[:, width - 1]
    below = reduced <= kth[:, np.newaxis]
    if np.all(np.count_nonzero(below, axis=1) == width):
        # the column of each entry below, row by row (what nonzero(below)[1] gives,
        # without the row indices)
        return (np.flatnonzero(below) % values.shape[1]).reshape(len(values), width)
    return np.argpartition(values, width - 1, axis=1)[:, :width]


def exact_neighbours(features, width):
    """Distances and indices ``(n, width)`` of each row's nearest other rows (brute
    force), sorted by distance.

    One float64 matrix product per block of rows (BLAS) and a partial sort; the
    distances whose expanded form ``|a|^2 + |b|^2 - 2 a.b`` lost digits to
    cancellation (below 1e-6 of the norms: near and duplicated rows) are recomputed
    from the differences, so duplicates are at exactly 0. What scikit-learn's
    brute-force ``kneighbors()`` returns (up to the order of equal distances), without
    the 20 ms its first call in a process spends scanning thread pools; after that
    call scikit-learn's chunked heap selection is about as fast at 700 rows and twice
    as fast at 2,000, so ``DiffusionSmoother`` uses this up to 1,000 rows.
    """
    features = np.ascontiguousarray(features, dtype=np.float64)
    n = len(features)
    if not 0 < width < n:
        raise ValueError(f"width must be in [1, {n - 1}]; got {width}.")
    norms = np.einsum("ij,ij->i", features, features)
    distances = np.empty((n, width), dtype=np.float64)
    indices = np.empty((n, width), dtype=np.int64)
    step = max(1, _EXACT_BLOCK_ENTRIES // n)  # float64 blocks
    for start in range(0, n, step):
        queries = np.arange(start, min(start + step, n))
        # |a|^2 + |b|^2 - 2 a.b, clipped at 0 (rounding): non-negative, so the
        # selection partitions their float32 bits as integers
        d2 = features[queries] @ features.T
        d2 *= -2
        d2 += norms[np.newaxis, :]
        d2 += norms[queries][:, np.newaxis]
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(len(queries)), queries] = np.inf  # not itself
        chosen = _smallest(d2, width, nonnegative=True)
        d2 = np.take_along_axis(d2, chosen, axis=1)
        near = d2 <= 1e-6 * (norms[queries][:, np.newaxis] + norms[chosen])
        if near.any():
            rows, cols = np.nonzero(near)
            diff = features[queries[rows]] - features[chosen[rows, cols]]
            d2[rows, cols] = np.einsum("ij,ij->i", diff, diff)
        order = np.argsort(d2, axis=1, kind="stable")
        distances[queries] = np.sqrt(np.take_along_axis(d2, order, axis=1))
        indices[queries] = np.take_along_axis(chosen, order, axis=1)
    return distances, indices


def clustered_neighbours(features, width, *, n_clusters=None, n_probe=8, random_state=0):
    """Distances and indices ``(n, width)`` of each row's (approximately) nearest other
    rows, sorted by distance.

    Parameters
    ----------
    features : ndarray of shape (n, d)
        float32 or float64 coordinates.
    width : int
        Neighbours per row (below n).
    n_clusters : int or None
        Clusters of the inverted file; None: ``sqrt(n)`` (at least 1).
    n_probe : int
        Clusters searched per cluster (nearest centres), its own included.
    random_state : int or None
        Seeds the clustering.

    Returns
    -------
    distances : ndarray of shape (n, width), float64
    indices : ndarray of shape (n, width), int64
    """
    features = np.ascontiguousarray(features)
    n = len(features)
    if not 0 < width < n:
        raise ValueError(f"width must be in [1, {n - 1}]; got {width}.")
    rng = np.random.default_rng(random_state)
    n_clusters = max(1, int(np.sqrt(n))) if n_clusters is None else min(n_clusters, n)
    centres = kmeans_centres(features, n_clusters, rng)
    norms = np.einsum("ij,ij->i", features, features)
    label = np.empty(n, dtype=np.intp)
    step = max(1, _BLOCK_ENTRIES // max(n_clusters, 1))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        label[rows] = np.argmin(_squared_distances(features[rows], centres, norms[rows]),
                                axis=1)
    centres = centres[np.unique(label)]  # empty clusters dropped
    label = np.unique(label, return_inverse=True)[1].ravel()
    members = np.split(np.argsort(label, kind="stable"),
                       np.cumsum(np.bincount(label))[:-1])
    near = np.argsort(_squared_distances(centres, centres), axis=1)
    distances = np.empty((n, width), dtype=np.float64)
    indices = np.empty((n, width), dtype=np.int64)
    for c, queries in enumerate(members):
        # its own cluster first (the nearest centre to a centre is itself), so the
        # queries are the candidates' first rows
        probe = np.concatenate([[c], near[c][near[c] != c][:n_probe - 1]])
        candidates = np.concatenate([members[p] for p in probe])
        while len(candidates) <= width and len(probe) < len(members):
            # too few rows nearby: widen the probe (small or unbalanced data)
            probe = np.concatenate([[c], near[c][near[c] != c][:2 * len(probe) - 1]])
            candidates = np.concatenate([members[p] for p in probe])
        d2 = _squared_distances(features[queries], features[candidates],
                                norms[queries], norms[candidates])
        own = np.arange(len(queries))
        d2[own, own] = np.inf  # not itself
        top = np.argpartition(d2, width - 1, axis=1)[:, :width]
        distances[queries], indices[queries] = _sorted_exact(features, queries,
                                                             candidates[top])
    return distances, indices

