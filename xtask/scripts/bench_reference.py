"""PyTorch reference for `cargo xtask bench`: the same step as `ddpm bench`, timed the same way.

  python xtask/scripts/bench_reference.py --case train|sample --preset seed|cpu-demo|ddpm-cifar10 --batch 8
      [--warmup 2] [--iters 5] [--threads 2] [--device cpu|cuda] [--dtype f32|bf16]
  python xtask/scripts/bench_reference.py --matmul-rate [--device cpu|cuda] [--dtype f32|bf16]
      [--threads 2]

Prints one JSON line (images per second: the median over the timed steps). The model is the
preset's: the seed's SimpleUnet (its code, in simple_unet_fixture.py) or the DDPM paper's U-Net
(ddpm_unet_fixture.py); the training step: random t, the closed-form q(x_t | x_0), the preset's loss
on the noise, backward, gradient clipping where the preset clips, Adam, and the loss read back. The
sampling step is one eval-mode prediction and one DDPM step.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddpm_unet_fixture import Unet  # noqa: E402
from simple_unet_fixture import SimpleUnet  # noqa: E402

# The presets' models, sizes, schedules and losses (crates/trainer/src/config.rs).
PRESETS = {
    "seed": dict(channels=(64, 128, 256, 512, 1024), image_channels=3, size=32, T=300, schedule="linear",
                 loss="l1", lr=1e-3),
    # The paper's U-Net at base 16: 1/2/2, one block a level, attention in the middle only.
    "cpu-demo": dict(paper=dict(ch=16, mult=(1, 2, 2), blocks=1, attn=(), dropout=0.0, groups=8),
                     image_channels=1, size=16, T=200, schedule="cosine", loss="l2", lr=2e-3, clip=1.0),
    # Ho et al.'s CIFAR-10 model (ddpm_unet_fixture.py's Unet: 35.7M parameters, dropout 0.1).
    "ddpm-cifar10": dict(paper=dict(), image_channels=3, size=32, T=1000, schedule="linear", loss="l2",
                         lr=2e-4, clip=1.0),
}


def build(preset):
    if "paper" in preset:
        return Unet(preset["image_channels"], preset["size"], **preset["paper"])
    return SimpleUnet(preset["image_channels"], preset["channels"])


def alphas_cumprod(preset):
    T = preset["T"]
    if preset["schedule"] == "linear":
        betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    else:
        f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - f(t + 1) / f(t), 0.999) for t in range(T)], dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, 0)


def model_flops(model, one_image, preset):
    """Floating-point operations of one image's forward pass (a multiply-add counts 2); a
    training step costs about 3 forward passes (forward, and the two products of backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(one_image, torch.zeros(1, dtype=torch.long, device=one_image.device))
    model.train(was_training)
    return counter.get_total_flops()


def matmul_rate(device, dtype):
    """The measured matrix-product rate (FLOP/s) on random data, the ceiling we compare to: bf16 on
    a GPU, f32 on the CPU (at the thread count set by the caller)."""
    cuda = device == "cuda"
    n, reps = 8192 if cuda else 2048, 10
    dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", choices=["train", "sample"])
    p.add_argument("--preset", choices=list(PRESETS), default="seed")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--matmul-rate", action="store_true",
                   help="print the matrix rate (at --device, --dtype, --threads) and exit")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.matmul_rate:
        rate = matmul_rate(a.device, a.dtype)
        return print(json.dumps(dict(device=a.device, dtype=a.dtype, matmul_flops_per_second=rate)))
    if a.case is None:
        p.error("--case is required")
    device = torch.device(a.device)
    # f32 on a GPU: TF32 tensor cores allowed, as burn-cuda's f32 products may use them.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    preset = PRESETS[a.preset]
    torch.manual_seed(0)
    model = build(preset).to(device)
    params = sum(q.numel() for q in model.parameters())
    betas, abar = alphas_cumprod(preset)
    sqrt_abar = abar.sqrt().float().to(device)
    sqrt_1m_abar = (1 - abar).sqrt().float().to(device)
    shape = (a.batch, preset["image_channels"], preset["size"], preset["size"])
    x0 = (torch.rand(shape, device=device) * 2 - 1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.dtype == "bf16")

    if a.case == "train":
        model.train()
        optim = torch.optim.Adam(model.parameters(), lr=preset["lr"])

        def step(_i):
            t = torch.randint(0, preset["T"], (a.batch,), device=device)
            noise = torch.randn_like(x0)
            x_t = sqrt_abar[t][:, None, None, None] * x0 + sqrt_1m_abar[t][:, None, None, None] * noise
            with autocast:
                out = model(x_t, t)
            out = out.float()
            loss = (out - noise).abs().mean() if preset["loss"] == "l1" else ((out - noise) ** 2).mean()
            loss.item()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if "clip" in preset:
                torch.nn.utils.clip_grad_norm_(model.parameters(), preset["clip"])
            optim.step()
    else:
        model.eval()
        x = torch.randn(shape, device=device)
        alphas = (1 - betas).float()
        post_var = (betas[1:] * (1 - abar[:-1]) / (1 - abar[1:])).float()

        def step(i):
            nonlocal x
            t = preset["T"] - 1 - i % preset["T"]
            tt = torch.full((a.batch,), t, device=device, dtype=torch.long)
            with torch.no_grad(), autocast:
                eps = model(x, tt).float()
            mean = (x - betas[t].item() / sqrt_1m_abar[t] * eps) / alphas[t].sqrt()
            x = mean + (post_var[t - 1].sqrt() * torch.randn_like(x) if t > 0 else 0)

    flops = model_flops(model, x0[:1], preset) * (3 if a.case == "train" else 1)
    seconds = []
    for i in range(a.warmup + a.iters):
        start = time.perf_counter()
        step(i)
        sync()
        if i >= a.warmup:
            seconds.append(time.perf_counter() - start)
    median = sorted(seconds)[len(seconds) // 2]
    print(json.dumps(dict(
        implementation="pytorch", torch=torch.__version__, case=a.case, preset=a.preset, batch=a.batch,
        image_size=preset["size"], backend=f"{a.device}-{a.dtype}", threads=torch.get_num_threads(),
        parameters=params, seconds=seconds, images_per_second=a.batch / median, flops_per_image=flops,
    )))


if __name__ == "__main__":
    main()
