"""The generation settings every generating tab shares, laid out as A1111 users expect them."""
from dataclasses import dataclass

import gradio as gr

from engine import GenerationRequest
from engine.styles import StyleBook, apply_styles
from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .studio import Studio

DEFAULT_PROMPT = "a red circle in the center on a blue background"


@dataclass
class PromptBox:
    prompt: gr.Textbox
    negative: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    styles: gr.Dropdown
    book: StyleBook

    def components(self) -> list:
        return [self.prompt, self.negative, self.styles]

    def styled(self, values: dict) -> tuple[str, str]:
        """The prompt and negative prompt with the chosen styles applied, as A1111 does before generating."""
        chosen, _ = self.book.chosen(values.get(self.styles) or [])
        return apply_styles(values[self.prompt], values[self.negative], chosen)


def prompt_box(studio: Studio, tab_id: str, prompt: str = DEFAULT_PROMPT) -> PromptBox:
    with gr.Row():
        with gr.Column(scale=5):
            prompt = gr.Textbox(prompt, label="Prompt", lines=2, elem_id=f"{tab_id}_prompt")
            with gr.Row():
                negative = gr.Textbox(studio.settings.default_negative_prompt, label="Negative prompt", lines=1,
                                      elem_id=f"{tab_id}_negative", scale=4)
                lora = gr.Dropdown(studio.state.lora_names(), value=None, label="Add LoRA (models/Lora)", scale=1,
                                   min_width=160, elem_id=f"{tab_id}_lora")
        with gr.Column(scale=1, min_width=160):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{tab_id}_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", size="sm", elem_id=f"{tab_id}_interrupt")
                skip = gr.Button("Skip", size="sm", elem_id=f"{tab_id}_skip")
            styles = gr.Dropdown(studio.styles.names(), value=[], multiselect=True, label="Styles",
                                 elem_id=f"{tab_id}_styles")
    lora.focus(lambda: gr.update(choices=studio.state.lora_names()), outputs=lora, queue=False)
    styles.focus(lambda: gr.update(choices=studio.styles.names()), outputs=styles, queue=False)
    lora.input(add_lora_tag, [prompt, lora], [prompt, lora], queue=False)
    interrupt.click(lambda: gr.Info(studio.jobs.interrupt()), queue=False)
    skip.click(lambda: gr.Info(studio.jobs.skip()), queue=False)
    return PromptBox(prompt, negative, generate, interrupt, skip, styles, studio.styles)


def add_lora_tag(prompt: str, name: str | None):
    """Append A1111's `<lora:name:1>` to the prompt (once); the strength can be edited in place."""
    if not name or f"<lora:{name}:" in prompt or f"<lora:{name}>" in prompt:
        return prompt, None
    return f"{prompt.rstrip()} <lora:{name}:1>".strip(), None


@dataclass
class SamplingControls:
    sampler: gr.Dropdown
    schedule: gr.Dropdown
    steps: gr.Slider
    width: gr.Slider
    height: gr.Slider
    cfg: gr.Slider
    seed: gr.Number
    batch_count: gr.Slider
    batch_size: gr.Slider
    tiling: gr.Checkbox

    def components(self) -> list:
        return [self.sampler, self.schedule, self.steps, self.width, self.height, self.cfg, self.seed,
                self.batch_count, self.batch_size, self.tiling]


def sampling_controls(studio: Studio, tab_id: str, last_seed: gr.State) -> SamplingControls:
    s = studio.settings
    with gr.Row():
        sampler = gr.Dropdown(list(SAMPLERS), value=s.default_sampler, label="Sampling method",
                              elem_id=f"{tab_id}_sampler")
        schedule = gr.Dropdown(SCHEDULE_NAMES, value=s.default_schedule, label="Schedule type",
                               elem_id=f"{tab_id}_schedule")
    steps = gr.Slider(1, 150, value=s.default_steps, step=1, label="Sampling steps", elem_id=f"{tab_id}_steps")
    size = studio.state.expected_size()
    with gr.Row():
        with gr.Column(scale=6):
            width = gr.Slider(64, 2048, value=size, step=8, label="Width", elem_id=f"{tab_id}_width")
            height = gr.Slider(64, 2048, value=size, step=8, label="Height", elem_id=f"{tab_id}_height")
        swap = gr.Button("⇅", size="sm", scale=1, min_width=40, elem_id=f"{tab_id}_swap")
    studio.size_sliders.append((width, height))
    swap.click(lambda w, h: (h, w), [width, height], [width, height], queue=False)
    with gr.Row():
        batch_count = gr.Slider(1, 100, value=1, step=1, label="Batch count", elem_id=f"{tab_id}_batch_count")
        batch_size = gr.Slider(1, 8, value=1, step=1, label="Batch size", elem_id=f"{tab_id}_batch_size")
    with gr.Row():
        cfg = gr.Slider(1, 30, value=s.default_cfg, step=0.5, label="CFG Scale", elem_id=f"{tab_id}_cfg", scale=6)
        tiling = gr.Checkbox(False, label="Tiling", min_width=80, scale=1, elem_id=f"{tab_id}_tiling")
    with gr.Row():
        seed = gr.Number(-1, label="Seed (-1: random)", precision=0, scale=6, elem_id=f"{tab_id}_seed")
        random_seed = gr.Button("Random", size="sm", scale=1, min_width=60, elem_id=f"{tab_id}_random_seed")
        reuse_seed = gr.Button("Reuse", size="sm", scale=1, min_width=60, elem_id=f"{tab_id}_reuse_seed")
    random_seed.click(lambda: -1, outputs=seed, queue=False)
    reuse_seed.click(lambda last: last if last is not None else -1, last_seed, seed, queue=False)
    return SamplingControls(sampler, schedule, steps, width, height, cfg, seed, batch_count, batch_size, tiling)


def build_request(box: PromptBox, controls: SamplingControls, values: dict, **extra) -> GenerationRequest:
    """The request the form describes (`values` maps components to their values); extra fields as given."""
    c = controls
    prompt, negative = box.styled(values)
    return GenerationRequest(
        prompt=prompt, negative_prompt=negative, sampler=values[c.sampler],
        schedule=values[c.schedule], steps=int(values[c.steps]), width=int(values[c.width]),
        height=int(values[c.height]), cfg_scale=float(values[c.cfg]), seed=int(values[c.seed] if values[c.seed]
                                                                                  is not None else -1),
        batch_count=int(values[c.batch_count]), batch_size=int(values[c.batch_size]),
        tiling=bool(values[c.tiling]), **extra)
