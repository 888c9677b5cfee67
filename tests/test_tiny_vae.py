"""TAESD: the engine's tiny autoencoder against diffusers' AutoencoderTiny with the same random weights, every file
layout users have (A1111's bare-key .pth with its Clamp at 0, diffusers folders, safetensors), and the finder."""
import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file

from engine import InvalidRequestError
from engine.errors import WrongFileTypeError
from engine.loading.tiny_vae import find_tiny_decoder, load_tiny_vae, tiny_vae_config
from tests.test_pipeline import pipe  # noqa: F401  (the tiny pipeline fixture)


def reference(seed: int = 0, **config) -> AutoencoderTiny:
    torch.manual_seed(seed)
    model = AutoencoderTiny(**config).eval()
    with torch.no_grad():
        for p in model.parameters():           # break ReLU symmetry: diffusers' init leaves many units dead
            p.add_(torch.randn_like(p) * 0.05)
    return model


def a1111_files(model: AutoencoderTiny, folder, stem: str = "taesd"):
    """madebyollin's layout: decoder keys shifted by one (a Clamp module at index 0), encoder keys as they are."""
    sd = model.state_dict()
    decoder = {f"{int(k.split('.')[2]) + 1}.{k.split('.', 3)[3]}": v for k, v in sd.items()
               if k.startswith("decoder.layers.")}
    encoder = {k[len("encoder.layers."):]: v for k, v in sd.items() if k.startswith("encoder.layers.")}
    torch.save(decoder, folder / f"{stem}_decoder.pth")
    torch.save(encoder, folder / f"{stem}_encoder.pth")
    return folder / f"{stem}_decoder.pth", folder / f"{stem}_encoder.pth"


def test_sd_sized_tiny_vae_matches_diffusers(tmp_path):
    ref = reference()
    decoder_file, encoder_file = a1111_files(ref, tmp_path)
    decoder, encoder = load_tiny_vae(decoder_file), load_tiny_vae(encoder_file)
    assert decoder.encoder is None and encoder.decoder is None
    assert decoder.config.downscale == 8 and decoder.config.num_decoder_blocks == (3, 3, 3, 1)
    latents = torch.randn(1, 4, 8, 12) * 2
    pixels = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        want_decoded, got_decoded = ref.decode(latents).sample, decoder.decode(latents)
        want_encoded, got_encoded = ref.encode(pixels).latents, encoder.encode(pixels)
    assert got_decoded.shape == (1, 3, 64, 96) and got_encoded.shape == (1, 4, 8, 12)
    assert want_decoded.std() > 0.05                  # a picture, not a constant
    torch.testing.assert_close(got_decoded, want_decoded, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_encoded, want_encoded, atol=1e-5, rtol=1e-4)


def test_diffusers_folder_and_other_latent_spaces(tmp_path):
    ref = reference(1, latent_channels=16, decoder_block_out_channels=(32, 32, 32), encoder_block_out_channels=(32, 32, 32),
                    num_encoder_blocks=(1, 2, 2), num_decoder_blocks=(2, 2, 1))
    ref.save_pretrained(tmp_path / "taesd3")
    model = load_tiny_vae(tmp_path / "taesd3")
    assert model.config.latent_channels == 16 and model.config.downscale == 4
    latents = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(latents), ref.decode(latents).sample, atol=1e-5, rtol=1e-4)


def test_finder_picks_the_family_name_and_the_matching_shape(tmp_path):
    sd, xl = reference(2), reference(3)
    a1111_files(sd, tmp_path, "taesd")
    a1111_files(xl, tmp_path, "taesdxl")
    small = reference(4, decoder_block_out_channels=(16, 16, 16), num_decoder_blocks=(1, 1, 1),
                      encoder_block_out_channels=(16, 16, 16), num_encoder_blocks=(1, 1, 1))
    save_file({k: v.contiguous() for k, v in small.state_dict().items() if k.startswith("decoder.")},
              tmp_path / "starter_taesd_decoder.safetensors")
    (tmp_path / "model.pt").write_bytes(b"not a taesd")               # A1111's Approx NN file is left alone
    assert find_tiny_decoder(tmp_path, "SD1.x", 4, 8).name == "taesd_decoder.pth"
    assert find_tiny_decoder(tmp_path, "SDXL", 4, 8).name == "taesdxl_decoder.pth"
    assert find_tiny_decoder(tmp_path, "SD-family (context 128)", 4, 4).name == "starter_taesd_decoder.safetensors"
    assert find_tiny_decoder(tmp_path, "SD1.x", 16, 8) is None
    assert find_tiny_decoder(tmp_path / "missing", "SD1.x", 4, 8) is None
    assert tiny_vae_config(tmp_path / "starter_taesd_decoder.safetensors").decoder_block_out_channels == (16, 16, 16)


def test_a_file_that_is_not_taesd_is_named_so(tmp_path):
    save_file({"conv1.weight": torch.zeros(8, 4, 7, 7)}, tmp_path / "taesd_decoder.safetensors")
    with pytest.raises(WrongFileTypeError, match="not a tiny autoencoder"):
        load_tiny_vae(tmp_path / "taesd_decoder.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WrongFileTypeError, match="expected"):
        load_tiny_vae(tmp_path / "notes.txt")


def test_generate_decodes_with_taesd_when_asked_and_refuses_before_sampling_without_one(pipe, tmp_path):
    from engine.images import to_pil
    from engine.preview import Previewer
    from tests.test_pipeline import request
    small = reference(5, decoder_block_out_channels=(16, 16), num_decoder_blocks=(1, 1),
                      encoder_block_out_channels=(16, 16), num_encoder_blocks=(1, 1))   # the tiny VAE's 2x latents
    pipe.tiny_vae_folder = tmp_path
    pipe.__dict__.pop("tiny_vae", None)
    try:
        steps = []
        with pytest.raises(InvalidRequestError, match="no tiny decoder"):
            pipe.generate(request(decode_method="TAESD"), progress=lambda *a: steps.append(a))
        assert steps == []                                   # refused before a step was spent
        save_file({k: v.contiguous() for k, v in small.state_dict().items() if k.startswith("decoder.")},
                  tmp_path / "taesd_decoder.safetensors")
        pipe.__dict__.pop("tiny_vae", None)
        full, tiny = pipe.generate(request()), pipe.generate(request(decode_method="TAESD"))
        assert torch.equal(full.latents[0], tiny.latents[0])     # the same sampling, another decoder
        with torch.no_grad():
            expected = to_pil(small.decode(full.latents[0][None]).sample)[0]
        got = np.asarray(tiny.images[0], np.int16)
        assert np.abs(got - np.asarray(expected, np.int16)).max() <= 1
        assert np.abs(got - np.asarray(full.images[0], np.int16)).mean() > 5
        assert "VAE Decoder: TAESD" in tiny.infotexts[0] and "VAE Decoder" not in full.infotexts[0]
        preview = Previewer("TAESD", tiny=pipe.tiny_vae)(full.latents[0][None])
        assert preview.shape == (1, 3, 64, 64) and 0 <= preview.min() and preview.max() <= 1
        assert Previewer("TAESD", tiny=None).method == "Approx cheap"    # no decoder: the free preview
    finally:
        pipe.tiny_vae_folder = None
        pipe.__dict__.pop("tiny_vae", None)
