"""txt2img's "Hires. fix" accordion, laid out as A1111's: upscaler, hires steps and denoising strength; upscale
by, or resize width / height to; and the second pass's own checkpoint, sampler, schedule and prompts."""
from dataclasses import dataclass

import gradio as gr

from engine.hires import HiresFix
from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .api.convert import pick_name
from .studio import Studio

SAME_CHECKPOINT, SAME_SAMPLER, SAME_SCHEDULE = "Use same checkpoint", "Use same sampler", "Use same scheduler"


@dataclass
class HiresControls:
    enabled: gr.Checkbox
    upscaler: gr.Dropdown
    steps: gr.Slider
    denoising: gr.Slider
    scale: gr.Slider
    resize_x: gr.Slider
    resize_y: gr.Slider
    checkpoint: gr.Dropdown
    sampler: gr.Dropdown
    schedule: gr.Dropdown
    prompt: gr.Textbox
    negative: gr.Textbox

    def components(self) -> list:
        return [self.enabled, self.upscaler, self.steps, self.denoising, self.scale, self.resize_x, self.resize_y,
                self.checkpoint, self.sampler, self.schedule, self.prompt, self.negative]

    def chosen(self, values: dict) -> HiresFix | None:
        if not values[self.enabled]:
            return None
        return HiresFix(upscaler=values[self.upscaler], scale=float(values[self.scale]),
                        resize_x=int(values[self.resize_x]), resize_y=int(values[self.resize_y]),
                        steps=int(values[self.steps]), denoising_strength=float(values[self.denoising]),
                        checkpoint=None if values[self.checkpoint] in (None, SAME_CHECKPOINT) else values[self.checkpoint],
                        sampler=None if values[self.sampler] == SAME_SAMPLER else values[self.sampler],
                        schedule=None if values[self.schedule] == SAME_SCHEDULE else values[self.schedule],
                        prompt=values[self.prompt] or "", negative_prompt=values[self.negative] or "")


def hires_controls(studio: Studio, tab_id: str, width: gr.Slider, height: gr.Slider) -> HiresControls:
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{tab_id}_hires"):
        enabled = gr.Checkbox(False, label="Hires. fix", elem_id=f"{tab_id}_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(studio.state.upscaler_names(), value="Latent", label="Upscaler",
                                   elem_id=f"{tab_id}_hr_upscaler")
            steps = gr.Slider(0, 150, value=0, step=1, label="Hires steps (0: as sampling steps)",
                              elem_id=f"{tab_id}_hires_steps")
            denoising = gr.Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                  elem_id=f"{tab_id}_denoising_strength")
        with gr.Row():
            scale = gr.Slider(1, 4, value=2, step=0.05, label="Upscale by", elem_id=f"{tab_id}_hr_scale")
            resize_x = gr.Slider(0, 2048, value=0, step=8, label="Resize width to", elem_id=f"{tab_id}_hr_resize_x")
            resize_y = gr.Slider(0, 2048, value=0, step=8, label="Resize height to", elem_id=f"{tab_id}_hr_resize_y")
        target = gr.Markdown(elem_id=f"{tab_id}_hr_target")
        with gr.Row():
            checkpoint = gr.Dropdown([SAME_CHECKPOINT, *studio.state.checkpoint_names()], value=SAME_CHECKPOINT,
                                     label="Hires checkpoint", elem_id=f"{tab_id}_hr_checkpoint")
            sampler = gr.Dropdown([SAME_SAMPLER, *SAMPLERS], value=SAME_SAMPLER, label="Hires sampling method",
                                  elem_id=f"{tab_id}_hr_sampler")
            schedule = gr.Dropdown([SAME_SCHEDULE, *SCHEDULE_NAMES], value=SAME_SCHEDULE, label="Hires schedule type",
                                   elem_id=f"{tab_id}_hr_scheduler")
        with gr.Row():
            prompt = gr.Textbox(label="Hires prompt (empty: the prompt)", lines=1, elem_id=f"{tab_id}_hr_prompt")
            negative = gr.Textbox(label="Hires negative prompt (empty: the negative prompt)", lines=1,
                                  elem_id=f"{tab_id}_hr_negative_prompt")
    checkpoint.focus(lambda: gr.update(choices=[SAME_CHECKPOINT, *studio.state.checkpoint_names()]),
                     outputs=checkpoint, queue=False)
    upscaler.focus(lambda: gr.update(choices=studio.state.upscaler_names()), outputs=upscaler, queue=False)
    for control in (enabled, scale, resize_x, resize_y, width, height):
        control.change(target_text, [enabled, scale, resize_x, resize_y, width, height], target, queue=False)
    controls = HiresControls(enabled, upscaler, steps, denoising, scale, resize_x, resize_y, checkpoint, sampler,
                             schedule, prompt, negative)
    studio.hires[tab_id] = controls
    return controls


def target_text(enabled, scale, resize_x, resize_y, width, height) -> str:
    """A1111's "from 512x512 to 1024x1024" line under the sliders."""
    if not enabled:
        return ""
    hires = HiresFix(scale=float(scale), resize_x=int(resize_x), resize_y=int(resize_y))
    w, h = hires.final_size(int(width), int(height))
    return f"from {int(width)}x{int(height)} to **{w}x{h}**"


def pasted(fields: dict, checkpoints: list[str], upscalers: list[str]) -> list:
    """Updates for the accordion from infotext fields ("Hires upscale: 2", "Hires upscaler: Latent", ...)."""
    if "Hires upscale" not in fields and "Hires resize-1" not in fields:
        return [False] + [gr.skip()] * 11

    def number(key, default, kind=float):
        try:
            return kind(fields[key])
        except (KeyError, ValueError):
            return default
    checkpoint = pick_name(fields["Hires checkpoint"], checkpoints) if "Hires checkpoint" in fields else None
    upscaler = fields.get("Hires upscaler")
    return [True, upscaler if upscaler in upscalers else "Latent", number("Hires steps", 0, int),
            number("Denoising strength", 0.7), number("Hires upscale", 2.0), number("Hires resize-1", 0, int),
            number("Hires resize-2", 0, int), checkpoint or SAME_CHECKPOINT,
            fields.get("Hires sampler") if fields.get("Hires sampler") in SAMPLERS else SAME_SAMPLER,
            fields.get("Hires schedule type") if fields.get("Hires schedule type") in SCHEDULE_NAMES else SAME_SCHEDULE,
            fields.get("Hires prompt", ""), fields.get("Hires negative prompt", "")]
