"""Infotext in A1111's format, and the parser that reads it (and A1111's own) back."""
from engine.infotext import create_infotext, parse_infotext

A1111_TEXT = ("a red fox, (masterpiece:1.2)\nin the snow\nNegative prompt: blurry, lowres\n"
              "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x768, "
              "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.75, "
              "Lora hashes: \"film: 1a2b3c, grain: 4d5e6f\", Version: v1.10.1")


def test_format_matches_a1111():
    text = create_infotext("a red fox", "blurry", {
        "Steps": 20, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 7.0, "Seed": 1,
        "Size": "512x512", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly", "Clip skip": None,
        "Version": "0.1.0"})
    assert text == ("a red fox\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
                    "CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
                    "Version: 0.1.0")


def test_values_with_commas_and_colons_are_quoted():
    text = create_infotext("p", "", {"Steps": 1, "Sampler": "Euler", "Seed": 2, "Lora hashes": "a: 1, b: 2"})
    assert text == 'p\nSteps: 1, Sampler: Euler, Seed: 2, Lora hashes: "a: 1, b: 2"'


def test_parses_a1111_infotext():
    params = parse_infotext(A1111_TEXT)
    assert params["Prompt"] == "a red fox, (masterpiece:1.2)\nin the snow"
    assert params["Negative prompt"] == "blurry, lowres"
    assert params["Steps"] == "20" and params["Sampler"] == "DPM++ 2M" and params["Schedule type"] == "Karras"
    assert params["Size-1"] == "512" and params["Size-2"] == "768"
    assert params["Lora hashes"] == "film: 1a2b3c, grain: 4d5e6f"
    assert params["Version"] == "v1.10.1"


def test_round_trip():
    fields = {"Steps": 30, "Sampler": "Euler a", "Schedule type": "Automatic", "CFG scale": 6.5, "Seed": 4294967295,
              "Size": "640x448", "Denoising strength": 0.4, "Mask blur": 4, "Inpaint area": "Only masked",
              "Version": "0.1.0"}
    text = create_infotext("line one\nline two: with colon", "neg, ative", fields)
    params = parse_infotext(text)
    assert params["Prompt"] == "line one\nline two: with colon" and params["Negative prompt"] == "neg, ative"
    for key, value in fields.items():
        if key != "Size":
            assert params[key] == str(value)
    assert (params["Size-1"], params["Size-2"]) == ("640", "448")


def test_prompt_only_text_has_no_parameters():
    assert parse_infotext("just a prompt") == {"Prompt": "just a prompt", "Negative prompt": ""}
