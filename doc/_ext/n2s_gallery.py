"""A sphinx-gallery scraper for the figures the examples save as PNG files.

Every example of ``examples/`` saves its figures to ``N2S_EXAMPLES_OUT`` when it runs
without a screen (and closes them), so matplotlib's own scraper finds no open figure.
:func:`saved_figures` takes the PNG files written since the last code block, moves them
to the gallery's image paths and returns the reST that shows them; figures left open
are matplotlib's scraper's (it runs next).
"""

import os
import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst


def _saved():
    folder = Path(os.environ["N2S_EXAMPLES_OUT"])
    return sorted(folder.glob("**/*.png"), key=lambda p: (p.stat().st_mtime, p.name))


def saved_figures(block, block_vars, gallery_conf, **kwargs):
    """The PNG files saved by the last block, as gallery images (sphinx-gallery scraper).

    Parameters
    ----------
    block : tuple
        The code block sphinx-gallery ran.
    block_vars : dict
        Holds ``image_path_iterator``, where the gallery wants its images.
    gallery_conf : dict
        sphinx-gallery's configuration (``src_dir``).
    **kwargs : dict
        Ignored.

    Returns
    -------
    rst : str
        The reST of the images; empty when the block saved none.
    """
    import matplotlib.pyplot as plt

    if plt.get_fignums():
        # Figures still open: matplotlib's scraper (next in line) takes them, with their
        # titles; the PNG files saved from them would show them twice.
        for path in _saved():
            path.unlink()
        return ""
    images = []  # moved, so the next block sees only its own files
    for path, target in zip(_saved(), block_vars["image_path_iterator"]):
        shutil.move(path, target)
        images.append(target)
    return figure_rst(images, gallery_conf["src_dir"])


def reset_saved_figures(gallery_conf, fname, when=None):
    """Remove files an earlier example left behind (sphinx-gallery module resetter)."""
    for path in _saved():
        path.unlink()
