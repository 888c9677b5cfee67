"""nn.Modules of the latent-diffusion family, with diffusers / transformers parameter names."""
from .clip import CLIPTextConfig, CLIPTextModel
from .unet import UNet2DConditionModel, UNetConfig
from .vae import AutoencoderKL, VAEConfig

__all__ = ["AutoencoderKL", "CLIPTextConfig", "CLIPTextModel", "UNet2DConditionModel", "UNetConfig", "VAEConfig"]
