"""Predicting a folder: images/s of `Predictor.predict_folder` against the model's pure forward
throughput on the same device, and batched against one image at a time (a script, not a test).

A random-init resnet18 U-Net run folder is written (the weights do not change the cost), and a
folder of smooth grey PNG images. Measured in one run: (a) the forward pass alone on inputs
already on the device, in batches; (b) predict_folder with its batches and read-ahead thread
(reading, resizing, forward, resizing back, PNG writing of mask + colour mask), at the batch
size it uses on that device; (c) the previous implementation's loop, one image at a time without
read-ahead (read_image, Predictor.probabilities, the two PNGs). Target on a GPU: (b)/(a) >= 0.8;
on the CPU: (b) no slower than (c).

`--patches`: the run is one trained on patches (meta["input"], scale 1, overlap 0.5), so every
image is predicted at full size by the sliding window (inference/sliding_window.py): rates are
in windows/s, (a) the forward pass on batches of windows, (b) predict_folder (windows of one or
several images per batch, Gaussian accumulation on the device, cropping, the PNGs).

    python tests/benchmarks/bench_predict.py [--images 48] [--side 512] [--size 256] [--device auto]
                                             [--patches]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--side", type=int, default=512, help="image side in pixels")
    ap.add_argument("--size", type=int, default=256, help="the model's input size")
    ap.add_argument("--batch", type=int, default=0, help="0: the predictor's default for the device")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--patches", action="store_true", help="a patch-trained run: sliding window at full size")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="segstudio-bench-predict-"))
    os.environ.setdefault("XDG_DATA_HOME", str(tmp / "data"))

    import torch
    from fastai.vision.learner import create_unet_model
    from PIL import Image
    from torchvision.models import resnet18

    from segstudio.inference import Predictor
    from segstudio.inference.sliding_window import window_positions
    from segstudio.runs import save_model

    torch.manual_seed(0)
    model = create_unet_model(resnet18, 3, (args.size, args.size), pretrained=False, n_in=3)
    run = tmp / "run"
    run.mkdir()
    meta = {"format": 1, "arch": "resnet18", "n_in": 3, "n_out": 3, "codes": ["background", "a", "b"],
            "size": args.size, "mean": [0.5] * 3, "std": [0.25] * 3, "window": "auto", "pretrained": False}
    if args.patches:
        meta["input"] = {"mode": "patches", "patch": args.size, "scale": 1.0, "overlap": 0.5}
    save_model(run, model.state_dict(), meta)
    per_image = len(window_positions(args.side, args.size, 0.5)) ** 2 if args.patches else 1  # windows
    unit = "windows" if args.patches else "images"
    images = tmp / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(args.images):
        small = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        Image.fromarray(small).resize((args.side, args.side), Image.BILINEAR).save(images / f"img{i:04d}.png")

    predictor = Predictor.load(run, device=args.device)
    device = predictor.device
    args.batch = args.batch or predictor.batch_size
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        predictor.model(x)  # warm-up
        sync()
        t0 = time.perf_counter()
        n = 0
        while n < args.images * per_image:
            predictor.model(x)
            n += args.batch
        sync()
        forward = n / (time.perf_counter() - t0)

    def folder_rate(name: str) -> float:
        predictor.batch_size = args.batch
        t = time.perf_counter()
        report = predictor.predict_folder(images, tmp / name)
        sync()
        assert len(report.written) == args.images, report.problems
        return args.images * per_image / (time.perf_counter() - t)

    def plain_rate() -> float:
        from segstudio.io.registry import read_image
        from segstudio.inference.predictor import png_bytes
        from segstudio.palette import colourise

        out = tmp / "plain"
        out.mkdir()
        t = time.perf_counter()
        for path in sorted(images.iterdir()):
            mask = predictor.predict(read_image(path).frames[0])
            (out / path.name).write_bytes(png_bytes(mask))
            (out / f"{path.stem}_color.png").write_bytes(png_bytes(colourise(mask, 3)))
        sync()
        return args.images * per_image / (time.perf_counter() - t)

    folder_rate("warm")  # the first call pays one-off costs (allocations, imports)
    batched = folder_rate("batched")
    single = plain_rate()
    print(f"device {device}, {args.images} images of {args.side}x{args.side}, model input {args.size} px, "
          f"batch {args.batch}, torch {torch.__version__}, {torch.get_num_threads()} threads"
          + (f", sliding window: {per_image} windows an image" if args.patches else ""))
    print(f"(a) forward only, on the device:       {forward:8.1f} {unit}/s")
    print(f"(b) predict_folder, batches of {args.batch}:     {batched:8.1f} {unit}/s  = {batched / forward:.2f} of (a)")
    print(f"(c) one at a time, no read-ahead:      {single:8.1f} {unit}/s  (b)/(c) = {batched / single:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
