"""Reference tables for the `ddpm-schedule` parity tests.

Writes crates/schedule/tests/fixtures/schedules.json with
  - "seed": the seed's precomputed tables (PyTorch float32, T = 300, linear 1e-4 -> 0.02),
    built with the seed's own code;
  - "diffusers": betas and alphas_cumprod of diffusers' DDPMScheduler for each beta schedule.

Run with `cargo xtask fixtures` (which makes a venv with torch and diffusers), or directly:
  python xtask/scripts/schedule_fixture.py <repo root>
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler


def seed_tables(T=300):
    # The seed's code, verbatim in substance.
    betas = torch.linspace(0.0001, 0.02, T)
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, axis=0)
    alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - alphas_cumprod)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    tables = dict(
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_recip_alphas=sqrt_recip_alphas,
        sqrt_alphas_cumprod=sqrt_alphas_cumprod,
        sqrt_one_minus_alphas_cumprod=sqrt_one_minus_alphas_cumprod,
        posterior_variance=posterior_variance,
    )
    return {name: t.tolist() for name, t in tables.items()}


DIFFUSERS_NAMES = {
    "linear": "linear",
    "quadratic": "scaled_linear",
    "cosine": "squaredcos_cap_v2",
    "sigmoid": "sigmoid",
}


def diffusers_tables():
    cases = []
    for T in (300, 1000):
        for ours, theirs in DIFFUSERS_NAMES.items():
            s = DDPMScheduler(num_train_timesteps=T, beta_schedule=theirs, beta_start=1e-4, beta_end=0.02)
            cases.append(
                dict(
                    beta_schedule=ours,
                    num_timesteps=T,
                    betas=s.betas.tolist(),
                    alphas_cumprod=s.alphas_cumprod.tolist(),
                )
            )
    return cases


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    out = root / "crates/schedule/tests/fixtures/schedules.json"
    fixture = dict(
        generator="xtask/scripts/schedule_fixture.py",
        torch=torch.__version__,
        diffusers=__import__("diffusers").__version__,
        seed=seed_tables(),
        diffusers_cases=diffusers_tables(),
    )
    out.write_text(json.dumps(fixture))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
