"""Reference fixtures for the `ddpm-eval` tests, computed with pytorch-fid (PyPI) itself.

Writes into crates/eval/tests/fixtures/:
  cifar_<n>.png        four CIFAR-10 test photos, converted losslessly from the shared JPEGs, so
                       that both sides read the same pixels
  features.json        pytorch-fid's 2048-d pool3 features of those four images, through the
                       shared FID Inception weights (../shared/weights/pt_inception-2015-12-05.pth)
  folders.json         pytorch-fid's FID between two folders of real CIFAR-10 test photos (the
                       first FOLDER_SIZE cats and dogs of the shared JPEG archive), and each
                       folder's statistics' summary
  distances.json       fixed feature sets (pseudo-random, some rank-deficient) with
                       pytorch-fid's Fréchet distance (scipy's sqrtm), an exact one from mpmath
                       at 50 digits for the small sets, and KID (unbiased MMD, cubic polynomial
                       kernel) over the whole sets, as torch-fidelity and clean-fid define it

Run via `cargo xtask fixtures`, or: python xtask/scripts/fid_fixture.py <workspace root>
"""

import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import mpmath
import numpy as np
import torch
from PIL import Image
from pytorch_fid import fid_score, inception

FOLDER_SIZE = 200
CLASSES = ("cat", "dog")
FEATURE_IMAGES = ("cat/0000", "dog/0001", "ship/0002", "frog/0003")


def load_shared_weights(weights):
    """pytorch-fid downloads its weights; here the shared copy (same network, same keys)."""
    state = torch.load(weights, map_location="cpu")
    inception.load_state_dict_from_url = lambda *args, **kwargs: state
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.eval()


def extract(archive, prefix, count, out_dir):
    """The first `count` files under `prefix` of the archive, by name, written to out_dir."""
    with tarfile.open(archive) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)),
            key=lambda m: m.name,
        )[:count]
        for member in members:
            (out_dir / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return len(members)


def features_fixture(archive, model, out):
    names, images = [], []
    with tarfile.open(archive) as tar:
        for index, name in enumerate(FEATURE_IMAGES):
            data = tar.extractfile(f"cifar10_jpg/test/{name}.jpg").read()
            image = Image.open(io.BytesIO(data)).convert("RGB")
            png = f"cifar_{index}.png"
            image.save(out / png)
            names.append(png)
            images.append(np.asarray(image, dtype=np.float32) / 255.0)
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    with torch.no_grad():
        features = model(batch)[0].squeeze(-1).squeeze(-1).double().numpy()
    (out / "features.json").write_text(
        json.dumps({"images": names, "features": features.tolist()})
    )


def folders_fixture(archive, model, out):
    with tempfile.TemporaryDirectory() as tmp:
        stats = {}
        for name in CLASSES:
            folder = Path(tmp) / name
            folder.mkdir()
            count = extract(archive, f"cifar10_jpg/test/{name}/", FOLDER_SIZE, folder)
            files = sorted(str(p) for p in folder.iterdir())
            mu, sigma = fid_score.calculate_activation_statistics(
                files, model, batch_size=50, dims=2048, device="cpu", num_workers=0
            )
            stats[name] = (count, mu, sigma)
        (n1, mu1, s1), (n2, mu2, s2) = stats.values()
        fid = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    summary = {
        name: {"count": n, "mean_sum": float(mu.sum()), "trace": float(np.trace(s))}
        for name, (n, mu, s) in stats.items()
    }
    (out / "folders.json").write_text(
        json.dumps({"classes": CLASSES, "per_folder": FOLDER_SIZE, "fid": float(fid), **summary})
    )


def exact_distance(x, y):
    """The Fréchet distance at 50 digits: Tr(sqrtm(S1 S2)) as the sum of the square roots of the
    eigenvalues of sqrt(S1) S2 sqrt(S1), all in mpmath."""
    mpmath.mp.dps = 50
    def stats(a):
        a = mpmath.matrix(a.tolist())
        n, d = a.rows, a.cols
        mean = [mpmath.fsum(a[i, j] for i in range(n)) / n for j in range(d)]
        cov = mpmath.matrix(d, d)
        for j in range(d):
            for k in range(d):
                cov[j, k] = mpmath.fsum((a[i, j] - mean[j]) * (a[i, k] - mean[k]) for i in range(n)) / (n - 1)
        return mean, cov
    m1, s1 = stats(x)
    m2, s2 = stats(y)
    e, q = mpmath.eigsy(s1)
    root = q * mpmath.diag([mpmath.sqrt(max(v, 0)) for v in e]) * q.T
    inner = root * s2 * root
    ev, _ = mpmath.eigsy((inner + inner.T) / 2)
    tr_sqrt = mpmath.fsum(mpmath.sqrt(max(v, 0)) for v in ev)
    d = len(m1)
    mean_term = mpmath.fsum((m1[j] - m2[j]) ** 2 for j in range(d))
    trace = mpmath.fsum(s1[j, j] + s2[j, j] for j in range(d))
    return float(mean_term + trace - 2 * tr_sqrt)


def kid(x, y):
    """Unbiased MMD² with k(a, b) = (a·b / d + 1)³ over the whole sets (one subset, equal sizes),
    torch-fidelity's `polynomial_mmd` and clean-fid's `kernel_distance` alike."""
    d = x.shape[1]
    kernel = lambda a, b: (a @ b.T / d + 1.0) ** 3
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m = x.shape[0]
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def distances_fixture(out):
    rng = np.random.RandomState(7)
    cases = []
    # name, samples per set, dimensions, exact reference
    for name, n, d, exact in [
        ("well_conditioned", 300, 32, False),
        ("rank_deficient", 20, 32, False),
        ("small_exact", 30, 8, True),
        ("small_singular_exact", 6, 8, True),
    ]:
        mix = rng.randn(d, d) * np.linspace(1.0, 0.01, d)  # correlated, decaying spectrum
        x = np.round(rng.randn(n, d) @ mix + 0.1, 6)
        y = np.round(rng.randn(n, d) @ mix * 0.9 - 0.05, 6)
        mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
        mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
        case = {
            "name": name,
            "x": x.tolist(),
            "y": y.tolist(),
            "pytorch_fid": float(fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)),
            "kid": kid(x, y),
        }
        if exact:
            case["exact"] = exact_distance(x, y)
        cases.append(case)
    (out / "distances.json").write_text(json.dumps({"cases": cases}))


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    shared = root.parent / "shared"
    archive = shared / "datasets/cifar10-jpg.tar.gz"
    out = root / "crates/eval/tests/fixtures"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    model = load_shared_weights(shared / "weights/pt_inception-2015-12-05.pth")
    features_fixture(archive, model, out)
    distances_fixture(out)
    folders_fixture(archive, model, out)
    print(f"wrote the FID fixtures into {out}")


if __name__ == "__main__":
    main()
