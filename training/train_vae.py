"""Stage 1: the starter AutoencoderKL (64x64 RGB <-> 16x16x4 latents), on freshly rendered scenes.

    python -m training.train_vae --steps 1500

Deterministic (seeded data and init) and resumable: rerunning continues from <runs>/vae.pt.
L1 reconstruction, weighted up on the shapes, plus a tiny KL term (Rombach et al. 2022 use ~1e-6 as well).
"""
import argparse
import time
from pathlib import Path

import torch

from engine.models import AutoencoderKL, VAEConfig
from training.common import RUNS, VAE_CONFIG, image_batch, load_checkpoint, save_checkpoint, setup_threads


def foreground_weight(images: torch.Tensor, boost: float = 4.0) -> torch.Tensor:
    """1 on the background, 1 + boost on the shapes: small objects matter as much as the big flat backdrop.
    The background colour of a scene is the median of its border pixels."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    differs = (images - background).abs().amax(dim=1, keepdim=True) > 0.1
    return 1.0 + boost * differs.float()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl", type=float, default=1e-6)
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder for checkpoints (not committed)")
    args = parser.parse_args(argv)
    setup_threads()
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig.from_dict(VAE_CONFIG))
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    step = 0
    checkpoint = args.runs / "vae.pt"
    state = load_checkpoint(checkpoint)
    if state:
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}")
    vae.train()
    start = time.time()
    while step < args.steps:
        images = image_batch(range(step * args.batch, (step + 1) * args.batch))
        for group in optimizer.param_groups:   # cosine decay to 10 %
            group["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(step / args.steps * 3.14159)).item()))
        posterior = vae.encode(images)
        recon = vae.decode(posterior.sample(torch.Generator().manual_seed(step)))
        l1 = (foreground_weight(images) * (recon - images).abs()).mean()
        kl = 0.5 * (posterior.mean ** 2 + posterior.std ** 2 - 1 - posterior.logvar).mean()
        loss = l1 + args.kl * kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0 or step == args.steps:
            print(f"step {step} l1 {l1.item():.4f} kl {kl.item():.2f} {(time.time() - start) / 60:.1f} min", flush=True)
        if step % 200 == 0 or step == args.steps:
            save_checkpoint(checkpoint, model=vae.state_dict(),
                            optimizer=optimizer.state_dict(), step=step)


if __name__ == "__main__":
    main()
