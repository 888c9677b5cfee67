"""What the starter model's training scripts share: architectures, data batches, resumable checkpoints."""
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from training.scenes import render, scene_for

RUNS = Path(__file__).parent / "runs"            # checkpoints and caches (not committed)
STARTER_DIR = Path(__file__).resolve().parents[1] / "models" / "Stable-diffusion" / "starter"

# GroupNorm with 4+ channels a group, as SD's VAE: with one channel a group a flat colour normalises to zero,
# and flat colour is what these scenes are made of
VAE_CONFIG = dict(block_out_channels=[32, 64, 64], layers_per_block=1, latent_channels=4, norm_num_groups=8,
                  in_channels=3, out_channels=3, sample_size=64, scaling_factor=1.0,
                  down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3)
UNET_CONFIG = dict(block_out_channels=[64, 128, 128], layers_per_block=1, attention_head_dim=[1, 2, 2],
                   cross_attention_dim=128, in_channels=4, out_channels=4, sample_size=16, norm_num_groups=16,
                   down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                   up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                   num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu")

# seeds: training scenes come from [0, TRAIN_SEEDS); evaluation uses seeds from EVAL_SEED_START on
TRAIN_SEEDS = 2_000_000_000
EVAL_SEED_START = 3_000_000_000


def setup_threads():
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", os.cpu_count() or 1)))


def image_batch(seeds) -> torch.Tensor:
    """Rendered scenes as (B, 3, 64, 64) in [-1, 1]."""
    arrays = [np.asarray(render(scene_for(int(s))[0]), dtype=np.float32) for s in seeds]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0


def fp32_weights(path: Path) -> dict:
    """A safetensors file's tensors in fp32 (exports are fp16), to train or continue from."""
    return {k: v.float() for k, v in load_file(path).items()}


def save_checkpoint(path: Path, **state):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)   # never a half-written checkpoint


def load_checkpoint(path: Path):
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def resume(path: Path, optimizer, **modules) -> int:
    """Load a resumable run's modules (by their checkpoint names) and optimizer; the step it had reached (0: new)."""
    state = load_checkpoint(path)
    if not state:
        return 0
    for name, module in modules.items():
        module.load_state_dict(state[name])
    optimizer.load_state_dict(state["optimizer"])
    print(f"resuming at step {state['step']}")
    return state["step"]


def optimiser_step(loss: torch.Tensor, optimizer, model, average=None, decay: float = 0.0) -> None:
    """One step on `loss`, gradients clipped to norm 1; `average` (an EMA copy of `model`) then follows it."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if average is not None:
        with torch.no_grad():
            for a, p in zip(average.parameters(), model.parameters()):
                a.lerp_(p, 1 - decay)


def latent_cache(runs: Path) -> tuple:
    """(latents, caption ids, scaling factor) of the UNet stage's cache, for the later stages."""
    cache = load_checkpoint(runs / "latents.pt")
    if cache is None:
        raise SystemExit("no latent cache: run python -m training.train_unet first (it builds <runs>/latents.pt)")
    return cache["latents"], cache["ids"], cache["scaling_factor"]


def write_json(path: Path, data: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
