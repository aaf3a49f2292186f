"""A second pair of eyes for the cpu-demo's samples: how many of a folder of generated digits a
small MNIST classifier recognises with confidence.

Trains (once; cached in target/) a LeNet-style CNN on MNIST's 60,000 training digits from
../shared/datasets/mnist (about 99% test accuracy), then reads every PNG in the folder (28×28, or
resized to it), and prints the share whose top class has probability ≥ 0.9, and how many of each
digit there are. A person looking at the grid remains the judge; this number is what makes two
recipes' grids comparable without squinting.

With `--size N` the classifier learns from digits that went the samples' way: shrunk to N px
(bicubic, as the training data is) and enlarged back to 28 (bilinear, as the samples are), so
that a recipe at 16 px is not counted against the detail 16 px cannot hold. It prints how many
real test digits, brought the same way, it is confident and right on: the ceiling of the count.

Usage: python xtask/scripts/digit_check.py <workspace root> <folder of PNGs> [--size N]
"""

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CONFIDENT = 0.9


def idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def network() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def as_input(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0).unsqueeze(1)


def at_size(pixels: np.ndarray, size: int | None) -> np.ndarray:
    """Digits shrunk to `size` px and enlarged back to 28, as a `size`-px sample is seen."""
    if size is None:
        return pixels
    return np.stack(
        [
            np.asarray(
                Image.fromarray(p).resize((size, size), Image.BICUBIC).resize((28, 28), Image.BILINEAR)
            )
            for p in pixels
        ]
    )


def classifier(root: Path, size: int | None) -> nn.Module:
    cached = root / "target" / ("digit_classifier.pt" if size is None else f"digit_classifier-{size}.pt")
    model = network()
    if cached.exists():
        model.load_state_dict(torch.load(cached))
        return model.eval()
    mnist = root.parent / "shared" / "datasets" / "mnist"
    images = as_input(at_size(idx(mnist / "train-images-idx3-ubyte.gz"), size))
    labels = torch.from_numpy(idx(mnist / "train-labels-idx1-ubyte.gz").astype(np.int64))
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(2):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 128):
            batch = order[start : start + 128]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test = as_input(at_size(idx(mnist / "t10k-images-idx3-ubyte.gz"), size))
    test_labels = torch.from_numpy(idx(mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    with torch.no_grad():
        confidence, digit = F.softmax(model(test), dim=1).max(1)
    right = digit == test_labels
    sure = right & (confidence >= CONFIDENT)
    print(
        f"classifier: {right.float().mean().item():.2%} right on MNIST's test digits, "
        f"{sure.float().mean().item():.2%} right with p >= {CONFIDENT}"
    )
    cached.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), cached)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description="Counts the recognisable digits in a folder.")
    parser.add_argument("root", type=Path, help="the workspace root")
    parser.add_argument("folder", type=Path, help="a folder of PNG samples")
    parser.add_argument("--size", type=int, help="the samples' side, when not 28 px")
    args = parser.parse_args()
    root, folder = args.root.resolve(), args.folder
    model = classifier(root, args.size)
    files = sorted(folder.glob("*.png"))
    if not files:
        sys.exit(f"no PNG files in {folder}")
    pixels = np.stack(
        [np.asarray(Image.open(f).convert("L").resize((28, 28), Image.BILINEAR)) for f in files]
    )
    with torch.no_grad():
        probabilities = F.softmax(model(as_input(pixels)), dim=1)
    confidence, digit = probabilities.max(1)
    recognised = int((confidence >= CONFIDENT).sum())
    counts = np.bincount(digit[confidence >= CONFIDENT].numpy(), minlength=10)
    print(
        f"{recognised} of {len(files)} recognised ({recognised / len(files):.0%}, "
        f"p >= {CONFIDENT}); per digit: {counts.tolist()}"
    )


if __name__ == "__main__":
    main()
