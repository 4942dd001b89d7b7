"""
Calibrating a median filter without clean data (the Noise2Self figure)
=======================================================================

Which radius should a median filter use on a noisy image? Comparing the filtered image
with the noisy one (the *self-supervised loss*) is useless for the ordinary median: it
is smallest for the smallest radius, which barely denoises. Remove the centre pixel from
the disk — a *donut* median, which is J-invariant — and the same comparison ranks the
radii exactly as the ground truth would: its curve is the ground-truth curve shifted
up by the noise variance (Batson & Royer, ICML 2019, figure 2).

This example draws both filters, radii 1 to 6, on scikit-image's ``camera`` with
Gaussian noise of standard deviation 0.1.

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

from sklearn_n2s import DonutMedian, FullSplit, SelfSupervisedScorer
from sklearn_n2s.plotting import plot_calibration, plot_comparison

SMALL = os.environ.get("N2S_EXAMPLE_SMALL") == "1"
STEM = "median_calibration"  # headless, figures are saved as STEM_<n>.png
NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
RADII = [1, 2, 3, 4, 5, 6]

# %%
# A noisy image, and a stack of one for the estimators
# ----------------------------------------------------
clean = img_as_float(data.camera())
if SMALL:
    clean = clean[192:320, 192:320]
noisy = random_noise(clean, mode="gaussian", var=0.1**2, rng=0, clip=False)  # zero-mean noise
X = noisy[np.newaxis]

# %%
# The donut median, calibrated by GridSearchCV on the noisy image alone
# ---------------------------------------------------------------------
# ``FullSplit`` scores every candidate on the image itself: a fixed filter learns
# nothing, so there is nothing to hold out.
search = GridSearchCV(DonutMedian(), {"radius": RADII}, scoring=SelfSupervisedScorer(),
                      cv=FullSplit()).fit(X)
print(f"radius chosen without clean data: {search.best_params_['radius']}")

# %%
# The ordinary median, scored the same way
# ----------------------------------------
# Its self-supervised loss compares each output pixel with the very pixel it looked at,
# so it rewards doing nothing.
ordinary_self, ordinary_truth = [], []
for radius in RADII:
    filtered = DonutMedian(radius=radius, output="ordinary").fit(X).transform(X)[0]
    ordinary_self.append(np.mean((filtered - noisy) ** 2))
    ordinary_truth.append(np.mean((filtered - clean) ** 2))

# %%
# The figure: self-supervised and ground-truth loss for both filters
# ------------------------------------------------------------------
fig = plot_calibration(search, clean=clean[np.newaxis], X=X)
ax = fig.axes[0]
for line in ax.lines:  # name the donut's curves, drawn by plot_calibration
    if line.get_label() in ("self-supervised loss", "ground-truth loss (vs clean)"):
        line.set_label("donut median: " + line.get_label().replace(" (vs clean)", ""))
ax.plot(RADII, ordinary_self, "o-", color="C1", alpha=0.8,
        label="ordinary median: self-supervised loss")
ax.plot(RADII, ordinary_truth, "s--", color="C1", alpha=0.8,
        label="ordinary median: ground-truth loss")
ax.set_title("Donut median (J-invariant) vs ordinary median")
ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
          frameon=False)
fig.set_size_inches(7.5, 6.0)
fig.tight_layout()

# %%
# What the chosen radius gives
# ----------------------------
# ``transform`` returns the optimal mix of the J-invariant output and the data
# (``output='shrink'``), which recovers the centre pixel's information.
denoised = search.best_estimator_.transform(X)[0]
psnr = [peak_signal_noise_ratio(clean, im, data_range=1) for im in (noisy, denoised)]
plot_comparison([noisy, denoised, clean],
                [f"noisy ({psnr[0]:.1f} dB)",
                 f"donut median r={search.best_params_['radius']} ({psnr[1]:.1f} dB)",
                 "clean"], vmin=0, vmax=1)

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
