"""The starter's tiny decoder (TAESD's architecture, engine.models.tiny_vae), distilled from the starter's own VAE.

    python -m training.train_taesd --steps 2000 --bf16
    python -m training.train_taesd --export        # -> models/VAE-approx/starter_taesd_decoder.safetensors

TAESD decodes the scaled latents the UNet works in. Here it learns to give what the full decoder gives for them
(not the rendered scene itself): the full VAE is the reference path, so PSNR against it is the quality measure.
Latents: the starter encoder's posterior samples of freshly rendered training scenes; a quarter of each batch gets
extra Gaussian noise (up to half the latents' spread), the half-denoised estimates a live preview shows.
Loss: L1 plus L1 on the image gradients (outlines are what decide a shape). Deterministic, resumable from
<runs>/taesd.pt. The starter's latents are 4x smaller than its pictures, so three stages instead of SD's four.
"""
import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.models.tiny_vae import TinyAutoencoder, TinyVAEConfig
from training.common import (RUNS, STARTER_DIR, image_batch, load_checkpoint, optimiser_step, resume,
                             save_checkpoint, setup_threads)
from training.train_controlnet import frozen_vae
from training.train_vae import gradient_l1

CONFIG = TinyVAEConfig(decoder_block_out_channels=(64, 64, 64), num_decoder_blocks=(3, 3, 1),
                       encoder_block_out_channels=(64, 64, 64), num_encoder_blocks=(1, 3, 3))
EXPORT = STARTER_DIR.parents[1] / "VAE-approx" / "starter_taesd_decoder.safetensors"


@torch.no_grad()
def training_pair(vae, seeds, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled latents, the full VAE's pictures of them in [-1, 1]) for a batch of training scenes."""
    generator = torch.Generator().manual_seed(step)
    posterior = vae.encode(image_batch(seeds))
    latents = posterior.sample(generator) * vae.scaling_factor
    noisy = torch.arange(len(latents)) < len(latents) // 4
    spread = torch.rand(len(latents), 1, 1, 1, generator=generator) * 0.5 * latents.std()
    latents = latents + noisy[:, None, None, None] * spread * torch.randn(latents.shape, generator=generator)
    return latents, vae.decode(latents / vae.scaling_factor).clamp(-1, 1)


@torch.no_grad()
def psnr_against_full_vae(decoder: TinyAutoencoder, vae, count: int = 64, first_seed: int = 3_000_000_000) -> float:
    """Mean PSNR (dB, pictures in [0, 1]) of the tiny decoder against the full VAE on held-out scenes."""
    latents = vae.encode(image_batch(range(first_seed, first_seed + count))).mean * vae.scaling_factor
    want = (vae.decode(latents / vae.scaling_factor).clamp(-1, 1) + 1) / 2
    got = (decoder.decode(latents).clamp(-1, 1) + 1) / 2
    mse = ((got - want) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return (10 * torch.log10(1 / mse)).mean().item()


def export(decoder: TinyAutoencoder, path: Path = EXPORT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"decoder.{k}": v.detach().half().contiguous() for k, v in decoder.decoder.state_dict().items()}, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--edge-weight", type=float, default=1.0)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the student's forward pass")
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder for checkpoints (not committed)")
    parser.add_argument("--starter", type=Path, default=STARTER_DIR, help="the model whose VAE is distilled")
    parser.add_argument("--export", action="store_true", help="write the trained decoder to models/VAE-approx")
    parser.add_argument("--out", type=Path, default=EXPORT)
    args = parser.parse_args(argv)
    setup_threads()
    torch.manual_seed(0)
    vae = frozen_vae(args.starter)
    decoder = TinyAutoencoder(CONFIG, encoder=False)
    checkpoint = args.runs / "taesd.pt"
    if args.export:
        state = load_checkpoint(checkpoint)
        if state is None:
            raise SystemExit(f"no trained decoder at {checkpoint}: train first")
        decoder.load_state_dict(state["model"])
        print(f"PSNR against the full VAE: {psnr_against_full_vae(decoder.eval(), vae):.2f} dB")
        print(f"wrote {export(decoder, args.out)}")
        return
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=args.lr, weight_decay=0.0)
    step = resume(checkpoint, optimizer, model=decoder)
    decoder.train()
    start = time.time()
    while step < args.steps:
        latents, target = training_pair(vae, range(step * args.batch, (step + 1) * args.batch), step)
        for group in optimizer.param_groups:   # cosine decay to 10 %
            group["lr"] = args.lr * (0.1 + 0.45 * (1 + torch.cos(torch.tensor(step / args.steps * torch.pi)).item()))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            pixels = decoder.decode(latents).float()
        l1 = (pixels - target).abs().mean()
        optimiser_step(l1 + args.edge_weight * gradient_l1(pixels, target), optimizer, decoder)
        step += 1
        if step % 50 == 0 or step == args.steps:
            print(f"step {step} l1 {l1.item():.4f} {(time.time() - start) / 60:.1f} min", flush=True)
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(checkpoint, model=decoder.state_dict(), optimizer=optimizer.state_dict(), step=step)
            decoder.eval()
            print(f"step {step} PSNR against the full VAE {psnr_against_full_vae(decoder, vae):.2f} dB", flush=True)
            decoder.train()


if __name__ == "__main__":
    main()
