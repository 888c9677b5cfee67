"""Stage 1: the starter AutoencoderKL (64x64 RGB <-> 16x16x4 latents), on freshly rendered scenes.

    python -m training.train_vae --steps 1500

Deterministic (seeded data and init) and resumable: rerunning continues from <runs>/vae.pt.
L1 reconstruction, weighted up on the shapes, plus a tiny KL term (Rombach et al. 2022 use ~1e-6 as well).

--decoder-only --init-from <starter folder> fine-tunes the decoder of an exported VAE and leaves its encoder
as it is, as Stability's ft-MSE VAEs did: the latent space stays the same, so the UNet, ControlNets and LCM
trained on it keep working and only the pictures get sharper. --edge-weight adds an L1 term on the image
gradients (the blur of a shape's outline costs little in plain L1 yet is what decides its shape).
--eval-every reports how many held-out reconstructions the evaluation's shape classifier still recognises.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from engine.models import AutoencoderKL, VAEConfig
from training.common import RUNS, VAE_CONFIG, image_batch, load_checkpoint, save_checkpoint, setup_threads


def foreground_weight(images: torch.Tensor, boost: float = 4.0) -> torch.Tensor:
    """1 on the background, 1 + boost on the shapes: small objects matter as much as the big flat backdrop.
    The background colour of a scene is the median of its border pixels."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    differs = (images - background).abs().amax(dim=1, keepdim=True) > 0.1
    return 1.0 + boost * differs.float()


def gradient_l1(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of the horizontal and vertical finite differences."""
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    return (dx(recon) - dx(images)).abs().mean() + (dy(recon) - dy(images)).abs().mean()


@torch.no_grad()
def reconstruction_shape_accuracy(vae: AutoencoderKL, count: int = 240) -> float:
    """Share of held-out single-shape scenes whose decoded encoding the evaluation still calls the right shape."""
    from PIL import Image
    from training.evaluate import held_out_cases, score
    from training.scenes import render
    cases = held_out_cases(count)
    images = torch.stack([torch.from_numpy(np.asarray(render(scene), np.float32)) for _, scene, _ in cases])
    recon = vae.decode(vae.encode(images.permute(0, 3, 1, 2) / 127.5 - 1).mean).float()
    pixels = ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return sum(score(scene, Image.fromarray(array))["shape"] for (_, scene, _), array in zip(cases, pixels)) / count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--kl", type=float, default=1e-6)
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder for checkpoints (not committed)")
    parser.add_argument("--init-from", type=Path, help="start from the VAE of an exported starter folder")
    parser.add_argument("--decoder-only", action="store_true", help="train the decoder, keep the encoder")
    parser.add_argument("--edge-weight", type=float, default=0.0, help="weight of the image-gradient L1 term")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    parser.add_argument("--eval-every", type=int, default=0)
    args = parser.parse_args(argv)
    if args.decoder_only and args.init_from is None:
        parser.error("--decoder-only needs --init-from (a trained encoder to keep)")
    setup_threads()
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig.from_dict(VAE_CONFIG))
    if args.init_from is not None:
        weights = load_file(args.init_from / "vae" / "diffusion_pytorch_model.safetensors")
        vae.load_state_dict({k: v.float() for k, v in weights.items()})
    if args.decoder_only:
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            posterior = vae.encode(images)
            recon = vae.decode(posterior.sample(torch.Generator().manual_seed(step))).float()
        l1 = (foreground_weight(images) * (recon - images).abs()).mean()
        kl = 0.5 * (posterior.mean ** 2 + posterior.std ** 2 - 1 - posterior.logvar).float().mean()
        loss = l1 + args.edge_weight * gradient_l1(recon, images) + (0 if args.decoder_only else args.kl * kl)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0 or step == args.steps:
            print(f"step {step} l1 {l1.item():.4f} kl {kl.item():.2f} {(time.time() - start) / 60:.1f} min", flush=True)
        if step % 200 == 0 or step == args.steps:
            save_checkpoint(checkpoint, model=vae.state_dict(),
                            optimizer=optimizer.state_dict(), step=step)
        if args.eval_every and step % args.eval_every == 0:
            vae.eval()
            print(f"step {step} held-out reconstructions, right shape: {reconstruction_shape_accuracy(vae):.1%}",
                  flush=True)
            vae.train()


if __name__ == "__main__":
    main()
