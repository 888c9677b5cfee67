"""The loaded model as one object: UNet, VAE, text encoder and tokenizer on one device."""
from dataclasses import dataclass
from pathlib import Path

from .devices import Device
from .loading import ModelComponents, load_components, load_vae
from .models import AutoencoderKL, CLIPTextModel, UNet2DConditionModel
from .tokenizer import CLIPTokenizer


@dataclass
class Pipeline:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    prediction_type: str
    device: Device
    source: Path

    @property
    def name(self) -> str:
        return self.source.stem if self.source.is_file() else self.source.name

    @property
    def family(self) -> str:
        context = self.unet.config.cross_attention_dim
        return {768: "SD1.x", 1024: "SD2.x"}.get(context, f"SD-family (context {context})")

    def summary(self) -> str:
        """One line a person can read: what was loaded, how big, predicting what, on which device."""
        cfg = self.unet.config
        params = sum(p.numel() for p in self.unet.parameters()) / 1e6
        extras = [f"{cfg.in_channels}-channel inpainting"] if cfg.in_channels == 9 else []
        extras += ["guidance embedding (LCM)"] if cfg.time_cond_proj_dim else []
        return (f"{self.name}: {self.family}, UNet {params:.1f}M parameters, channels "
                f"{'/'.join(map(str, cfg.block_out_channels))}, {self.prediction_type} prediction"
                f"{', ' + ', '.join(extras) if extras else ''}; on {self.device}")

    def set_vae(self, path: str | Path | None) -> None:
        """Use a separate VAE file (models/VAE/), keeping this model's latent scaling."""
        if path is not None:
            self.vae = load_vae(path, self.vae.scaling_factor, self.device.dtype, self.device.device)


def load_pipeline(path: str | Path, device: Device | None = None, vae: str | Path | None = None,
                  prediction_type: str | None = None) -> Pipeline:
    """Load a checkpoint file or diffusers folder. `device` defaults to Device.choose() (auto)."""
    device = device or Device.choose()
    parts: ModelComponents = load_components(path, device.dtype, device.device, prediction_type)
    pipe = Pipeline(parts.unet, parts.vae, parts.text_encoder, CLIPTokenizer(pad_id=parts.pad_token_id),
                    parts.prediction_type, device, Path(path))
    pipe.set_vae(vae)
    return pipe
