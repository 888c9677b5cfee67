"""Write the trained starter model where the app finds it: a diffusers-style folder, weights in fp16.

    python -m training.export                              # -> models/Stable-diffusion/starter/
    python -m training.export --single-file out.safetensors # also an A1111-style single file + .yaml

Takes the EMA weights of <runs>/unet.pt and the VAE of <runs>/vae.pt (default runs folder: training/runs),
or the VAE checkpoint --vae names (a decoder fine-tuned by train_vae --decoder-only).
"""
import argparse
from pathlib import Path

from safetensors.torch import save_file

from engine.loading.ldm_export import ldm_state_dict
from engine.models import AutoencoderKL, VAEConfig
from training.common import RUNS, STARTER_DIR, TEXT_CONFIG, UNET_CONFIG, VAE_CONFIG, load_checkpoint, write_json
from training.train_unet import make_models

DESCRIPTION = ("Built-in demo model: coloured shapes (circle, square, triangle, star, ring, diamond) on a coloured "
               "background, 64x64. Trained from scratch by this project's scripts in training/.")


def trained_modules(runs: Path, vae_checkpoint: Path | None = None):
    state = load_checkpoint(runs / "unet.pt")
    if state is None:
        raise SystemExit("nothing to export: train first (python -m training.train_unet)")
    unet, text_encoder = make_models()
    unet.load_state_dict(state["ema_unet"])
    text_encoder.load_state_dict(state["ema_text"])
    vae_config = {**VAE_CONFIG, "scaling_factor": state["scaling_factor"]}
    vae = AutoencoderKL(VAEConfig.from_dict(vae_config))
    vae.load_state_dict(load_checkpoint(vae_checkpoint or runs / "vae.pt")["model"])
    schedule = {"prediction_type": state.get("prediction_type", "epsilon")}
    if state.get("zero_terminal_snr"):
        schedule["rescale_betas_zero_snr"] = True
    return unet.eval(), vae.eval(), text_encoder.eval(), vae_config, state["step"], schedule


def half(module) -> dict:
    return {k: v.detach().half().contiguous() for k, v in module.state_dict().items()}


def export_folder(runs: Path, out: Path = STARTER_DIR, vae_checkpoint: Path | None = None):
    unet, vae, text_encoder, vae_config, step, schedule = trained_modules(runs, vae_checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    for name, module, config, weights in (
            ("unet", unet, {"_class_name": "UNet2DConditionModel", **UNET_CONFIG}, "diffusion_pytorch_model"),
            ("vae", vae, {"_class_name": "AutoencoderKL", **vae_config}, "diffusion_pytorch_model"),
            ("text_encoder", text_encoder, {"architectures": ["CLIPTextModel"], **TEXT_CONFIG}, "model")):
        write_json(out / name / "config.json", config)
        save_file(half(module), out / name / f"{weights}.safetensors")
    write_json(out / "scheduler" / "scheduler_config.json", {
        "_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, **schedule})
    write_json(out / "tokenizer" / "tokenizer_config.json", {"pad_token": "<|endoftext|>", "model_max_length": 77})
    write_json(out / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "description": DESCRIPTION, "training_steps": step})
    print(f"wrote {out} (UNet/text encoder step {step})")


def export_single_file(runs: Path, path: Path, vae_checkpoint: Path | None = None):
    """Original LDM key names, fp16, with the sidecar .yaml A1111 reads for what shapes cannot tell."""
    unet, vae, text_encoder, vae_config, _, schedule = trained_modules(runs, vae_checkpoint)
    tensors = {k: v.half().contiguous() for k, v in ldm_state_dict(unet, vae, text_encoder).items()}
    save_file(tensors, path)
    heads = UNET_CONFIG["block_out_channels"][0] // UNET_CONFIG["attention_head_dim"][0]
    path.with_suffix(".yaml").write_text(
        "model:\n  params:\n"
        + ('    parameterization: "v"\n' if schedule["prediction_type"] == "v_prediction" else "")
        + f"    scale_factor: {vae_config['scaling_factor']}\n"
        f"    unet_config:\n      params:\n        num_head_channels: {heads}\n"
        f"        norm_num_groups: {UNET_CONFIG['norm_num_groups']}\n"
        f"    first_stage_config:\n      params:\n        ddconfig:\n"
        f"          norm_num_groups: {vae_config['norm_num_groups']}\n")
    print(f"wrote {path} and {path.with_suffix('.yaml').name}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STARTER_DIR)
    parser.add_argument("--single-file", type=Path)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--vae", type=Path, help="VAE checkpoint to ship instead of <runs>/vae.pt")
    args = parser.parse_args(argv)
    if args.vae is not None and not args.vae.is_file():
        parser.error(f"no VAE checkpoint at {args.vae}")
    export_folder(args.runs, args.out, args.vae)
    if args.single_file:
        export_single_file(args.runs, args.single_file, args.vae)


if __name__ == "__main__":
    main()
