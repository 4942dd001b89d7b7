"""
Calibrating a Gaussian filter and wavelet shrinkage, and checking against the truth
====================================================================================

Two classical denoisers with one knob each:

- :class:`~sklearn_n2s.JInvariantGaussian`: the width ``sigma`` (pixels) of a Gaussian
  blur. Its J-invariant form is exact and cheap: remove the kernel's centre weight and
  renormalise.
- :class:`~sklearn_n2s.JInvariantWavelet`: the noise level ``sigma`` that sets the
  thresholds of scikit-image's ``denoise_wavelet``. Its J-invariant form masks a grid of
  pixels, fills them from their neighbours and keeps the output there.

Both are calibrated by a plain ``GridSearchCV`` with the self-supervised scorer on the
noisy image only; since this example knows the clean image, it also shows what the
search could not see: the ground-truth loss and PSNR at every parameter.

Set ``N2S_EXAMPLE_SMALL=1`` to run it on a 128 x 128 crop (the test suite does). Without
a screen (``MPLBACKEND=Agg``) or with ``N2S_EXAMPLES_OUT=DIR`` the figures are saved
as PNG files instead of shown.
"""

import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from skimage.metrics import peak_signal_noise_ratio
from skimage.util import img_as_float, random_noise
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import (
    FullSplit,
    JInvariantGaussian,
    JInvariantWavelet,
    SelfSupervisedScorer,
    WaveletDecompositionCache,
)
from sklearn_n2s.plotting import plot_calibration, plot_comparison

SMALL = os.environ.get("N2S_EXAMPLE_SMALL") == "1"
STEM = "gaussian_wavelet_calibration"  # headless, figures are saved as STEM_<n>.png
NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}

clean = img_as_float(data.coins())
if SMALL:
    clean = clean[100:228, 100:228]
noisy = random_noise(clean, mode="gaussian", var=0.1**2, rng=1, clip=False)  # zero-mean
X = noisy[np.newaxis]


def psnr(image):
    return peak_signal_noise_ratio(clean, image, data_range=1)


# %%
# Two searches, no clean data
# ---------------------------
searches = {
    "gaussian": GridSearchCV(
        JInvariantGaussian(), {"sigma": [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]},
        scoring=SelfSupervisedScorer(), cv=FullSplit()),
    "wavelet": GridSearchCV(
        # The cache is shared by the clones the search makes: every sigma reuses the
        # 16 masked decompositions.
        JInvariantWavelet(memory=WaveletDecompositionCache()),
        {"sigma": [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2]},
        scoring=SelfSupervisedScorer(), cv=FullSplit()),
}
for name, search in searches.items():
    search.fit(X)
    print(f"{name}: chosen {search.best_params_}, "
          f"PSNR of transform {psnr(search.best_estimator_.transform(X)[0]):.2f} dB "
          f"(noisy {psnr(noisy):.2f} dB)")

# %%
# Self-supervised loss against ground truth
# -----------------------------------------
# The star is the choice made without clean data; the ring is where the ground-truth
# loss is lowest. The gap between the curves is the noise variance, the same for every
# parameter, so the two minima coincide (up to the randomness of the noise).
fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
for ax, search in zip(axes, searches.values()):
    plot_calibration(search, clean=clean[np.newaxis], X=X, ax=ax)
fig.tight_layout()

# %%
# The images
# ----------
outputs = {name: s.best_estimator_.transform(X)[0] for name, s in searches.items()}
plot_comparison(
    [noisy] + list(outputs.values()) + [clean],
    [f"noisy ({psnr(noisy):.1f} dB)"]
    + [f"{name} ({psnr(image):.1f} dB)" for name, image in outputs.items()] + ["clean"],
    vmin=0, vmax=1)

# %%
# Show the figures, or save them when there is no screen
# ------------------------------------------------------
# With a non-interactive backend (``MPLBACKEND=Agg``: a server, CI, the test suite) or
# with ``N2S_EXAMPLES_OUT`` set, the figures are written as PNG files to that directory
# (default: the current one) instead of shown.
out_dir = os.environ.get("N2S_EXAMPLES_OUT")
if out_dir is not None or matplotlib.get_backend().lower() in NON_INTERACTIVE:
    os.makedirs(out_dir or ".", exist_ok=True)
    for number in plt.get_fignums():
        path = os.path.join(out_dir or ".", f"{STEM}_{number}.png")
        plt.figure(number).savefig(path, dpi=80)
        print(f"saved {path}")
    plt.close("all")
else:
    plt.show()
