"""The Consistency tab: pictures in one to eight model evaluations (LCM, consistency sampling), from a prompt,
a picture (img2img) or a painted mask (inpaint), the consistency-model paper's zero-shot edits of a picture
(colorize, super-resolve, outpaint: engine.zero_shot), and a live mode that redraws as the prompt or a slider
changes.

Live mode: each change bumps this browser session's counter and cancels its running live picture; the new
run waits a moment (debounce) and gives up if a newer change arrived meanwhile, so typing costs one picture.
"""
import itertools
import re
import threading
import time
from typing import NamedTuple

import gradio as gr

from engine import GenerationRequest, ZeroShotEdit
from engine.zero_shot import SCALES

from .generation_form import DEFAULT_PROMPT, prompt_box
from .img2img import mask_from_editor
from .results import results_panel, run_generation
from .studio import Destination, Studio, Tab


class Method(NamedTuple):
    """What a Consistency-tab method runs, and what picking it sets on the page."""
    sampler: str
    schedule: str
    steps: int | None       # what picking the method sets; None keeps what the page holds
    cfg: float | None
    size: int | None


METHODS = {
    "LCM": Method("LCM", "Automatic", None, None, None),
    "Consistency": Method("Consistency", "Automatic", None, None, None),
    "TCD": Method("TCD", "Automatic", None, None, None),                # TCD models / TCD-LoRAs, gamma 0.3
    "Turbo": Method("Euler a", "SGM Uniform", 1, 1.0, 512),         # SDXL-Turbo / SD-Turbo: 1-4 steps, no CFG
    "Lightning / Hyper": Method("Euler", "SGM Uniform", 4, 1.0, None),  # SDXL-Lightning, Hyper-SDXL: 2-8 steps
}
DEBOUNCE_SECONDS = 0.4
NOTE = ("Made for few-step models. **LCM / Consistency**: a checkpoint distilled as LCM (guidance is an input, "
        "1-8 steps), or any checkpoint with an LCM-LoRA in the prompt, e.g. `<lora:lcm-lora-sdv1-5:1>`, and CFG "
        "1-2; a consistency-trained model (`starter-ct`) samples on its own noise levels. **TCD** (trajectory consistency distillation: a TCD checkpoint or TCD-LoRA; gamma 0.3, the API's "
        "`eta`) re-noises part way, between DDIM and LCM. **Turbo** (SDXL-Turbo, SD-Turbo) and **Lightning / Hyper** (SDXL-Lightning, Hyper-SDXL checkpoints "
        "or their LoRAs): timesteps from 999 on SGM's uniform grid, CFG 1, so no unconditional pass runs. "
        "With a picture below it does img2img, with a painted mask inpainting; **Colorize** keeps a greyscale "
        "picture's brightness and lets the model choose the colours (name them in the prompt), **Super-resolve** "
        "keeps a small picture's pixels as the averages of the larger one's and lets the model draw the detail, "
        "**Outpaint** keeps the picture and extends it (zero-shot, as the consistency-model paper does them).")
TASKS = ("Img2img / Inpaint", "Colorize", "Super-resolve", "Outpaint")
SIDES = ("left", "top", "right", "bottom")


def zero_shot_edit(task: str, picture, scale, border, sides) -> ZeroShotEdit | None:
    """The tab's zero-shot edit of `picture`, or None for img2img / inpaint."""
    if task == TASKS[0]:
        return None
    if picture is None:
        raise gr.Error(f"{task}: upload a picture first.")
    if task == "Outpaint" and not sides:
        raise gr.Error("Outpaint: tick at least one side to extend.")
    extend = tuple(int(border) if side in (sides or ()) else 0 for side in SIDES)
    return ZeroShotEdit(task, picture, scale=int(scale), extend=extend)


def method_defaults(method: str, width: int | None = None, height: int | None = None) -> tuple:
    """The steps, CFG, width and height a method starts with (Turbo: 1 step, and a size above 512 comes down
    to 512, the size SDXL-Turbo and SD-Turbo were distilled at, which their weights do not tell, while a
    smaller model's size stays; Lightning: 4 steps; both CFG 1)."""
    m = METHODS[method]
    sizes = [None if m.size is None else min(m.size, now or m.size) for now in (width, height)]
    return tuple(gr.skip() if value is None else value for value in (m.steps, m.cfg, *sizes))


NAME_HINTS = (("turbo", "Turbo"), ("lightning", "Lightning / Hyper"), ("hyper", "Lightning / Hyper"),
              ("tcd", "TCD"), ("lcm", "LCM"), ("consistency", "Consistency"))
CT_NAME = re.compile(r"(^|[^a-z])(ct|icm|ect)([^a-z]|$)")   # consistency-trained: starter-ct, iCM, ECT models


def method_for(checkpoint: str | None, prompt: str = "") -> str | None:
    """The method a checkpoint's or a prompt's LoRA names call for (SDXL-Turbo, SDXL_Lightning_4step,
    Hyper-SD15-8steps-lora, TCD-SDXL-LoRA, LCM_Dreamshaper_v7, <lora:lcm-lora-sdv1-5:1>, starter-ct), or None."""
    loras = " ".join(re.findall(r"<lora:([^:>]+)", prompt or ""))
    for text in (loras, checkpoint or ""):
        for hint, method in NAME_HINTS:
            if hint in text.lower():
                return method
        if CT_NAME.search(text.lower()):
            return "Consistency"
    return None


def lcm_checkpoint(names: list[str]) -> str | None:
    """The checkpoint this tab starts with: the first whose name says LCM."""
    return next((n for n in names if "lcm" in n.lower()), None)


class LiveRuns:
    """Per browser session: the number of the newest change, so a stale live run knows to give up."""

    def __init__(self):
        self._lock = threading.Lock()
        self._newest: dict[str, int] = {}
        self._counter = itertools.count(1)

    def bump(self, session: str) -> int:
        with self._lock:
            self._newest[session] = next(self._counter)
            return self._newest[session]

    def is_newest(self, session: str, number: int) -> bool:
        with self._lock:
            return self._newest.get(session) == number


def build(studio: Studio) -> None:
    live_runs = LiveRuns()
    last_seed = gr.State(None)
    names = studio.state.checkpoint_names()
    box = prompt_box(studio, "consistency", prompt=DEFAULT_PROMPT)
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown(NOTE)
            with gr.Row():
                checkpoint = gr.Dropdown(names, value=lcm_checkpoint(names) or studio.state.default_checkpoint(),
                                         label="Model", elem_id="consistency_model", scale=4)
                refresh = gr.Button("🔄", size="sm", scale=1, min_width=40, elem_id="consistency_refresh")
                live = gr.Checkbox(False, label="Live: redraw as I type", elem_id="consistency_live", scale=2)
            with gr.Row():
                sampler = gr.Radio(list(METHODS), value="LCM", label="Method", elem_id="consistency_sampler")
                steps = gr.Slider(1, 8, value=4, step=1, label="Steps", elem_id="consistency_steps")
            cfg = gr.Slider(1, 15, value=7, step=0.5, label="Guidance scale (CFG)", elem_id="consistency_cfg")
            size = studio.state.expected_size()
            with gr.Row():
                width = gr.Slider(64, 1024, value=size, step=8, label="Width", elem_id="consistency_width")
                height = gr.Slider(64, 1024, value=size, step=8, label="Height", elem_id="consistency_height")
            studio.size_sliders.append((width, height))
            with gr.Row():
                seed = gr.Number(-1, label="Seed (-1: random)", precision=0, elem_id="consistency_seed")
                batch_size = gr.Slider(1, 8, value=1, step=1, label="Batch size", elem_id="consistency_batch_size")
            with gr.Accordion("Start from a picture (img2img, inpaint, colorize, super-resolve, outpaint)",
                              open=False):
                task = gr.Radio(list(TASKS), value=TASKS[0], label="Task", elem_id="consistency_task")
                editor = gr.ImageMask(label="Picture (paint on it to inpaint)", type="pil", height=280,
                                      sources=["upload", "clipboard"], elem_id="consistency_image",
                                      brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"))
                strength = gr.Slider(0.05, 1, value=0.6, step=0.01, label="Denoising strength",
                                     elem_id="consistency_strength")
                with gr.Row():
                    scale = gr.Dropdown(list(SCALES), value=4, label="Super-resolve: times larger",
                                        elem_id="consistency_scale")
                    border = gr.Slider(8, 512, value=64, step=8, label="Outpaint: pixels added",
                                       elem_id="consistency_border")
                    sides = gr.CheckboxGroup(list(SIDES), value=["left", "right"], label="Outpaint: sides",
                                             elem_id="consistency_sides")
                gr.Markdown("Colorize, super-resolve and outpaint make the picture's own size (times the scale, "
                            "plus the borders) and start from the top of the schedule (strength 1).")
        with gr.Column(scale=2):
            panel = results_panel(studio, "consistency", last_seed)
    studio.destinations["Consistency"] = Destination("Consistency", "consistency", editor, box.prompt, box.negative)

    refresh.click(lambda: gr.update(choices=studio.state.checkpoint_names()), outputs=checkpoint, queue=False)
    sampler.input(method_defaults, [sampler, width, height], [steps, cfg, width, height], queue=False)

    def preset(checkpoint_, prompt, sampler_, width_, height_):
        """Picking a checkpoint (or adding a LoRA) whose name says its family picks that family's method."""
        method = method_for(checkpoint_, prompt)
        if method is None or method == sampler_:
            return (gr.skip(),) * 5
        return (method, *method_defaults(method, width_, height_))

    preset_fields = [checkpoint, box.prompt, sampler, width, height]
    checkpoint.input(preset, preset_fields, [sampler, steps, cfg, width, height], queue=False)
    box.prompt.blur(preset, preset_fields, [sampler, steps, cfg, width, height], queue=False)
    task.input(lambda t: 1.0 if t != TASKS[0] else gr.skip(), task, strength, queue=False)
    fields = [box.prompt, box.negative, checkpoint, sampler, steps, cfg, width, height, seed, batch_size, editor,
              strength, task, scale, border, sides]

    def request_from(values) -> GenerationRequest:
        (prompt, negative, _, sampler_, steps_, cfg_, width_, height_, seed_, batch, image, strength_,
         task_, scale_, border_, sides_) = values
        extra = {}
        edit = zero_shot_edit(task_, (image or {}).get("background"), scale_, border_, sides_)
        if edit is not None:
            width_, height_ = edit.canvas_size()
            extra = dict(zero_shot=edit, denoising_strength=float(strength_))
        elif image and image.get("background") is not None:
            painted = any(layer is not None and layer.getbbox() is not None for layer in image.get("layers") or [])
            if painted:
                picture, mask = mask_from_editor(image)
                extra = dict(init_image=picture, mask=mask, mask_blur=4, masked_content="original")
            else:
                extra = dict(init_image=image["background"])
            extra["denoising_strength"] = float(strength_)
        method = METHODS[sampler_]
        return GenerationRequest(prompt=prompt, negative_prompt=negative, sampler=method.sampler,
                                 schedule=method.schedule,
                                 steps=int(steps_),
                                 cfg_scale=float(cfg_), width=int(width_), height=int(height_),
                                 seed=int(seed_ if seed_ is not None else -1), batch_size=int(batch), **extra)

    def run(*values):
        yield from run_generation(studio, "consistency", request_from(values), checkpoint=values[2])

    box.generate.click(run, fields, panel.outputs(), concurrency_limit=1, concurrency_id="generate",
                       show_progress="minimal", show_progress_on=panel.progress)

    def on_change(is_live, request: gr.Request):
        if not is_live:
            return 0
        session = request.session_hash or ""
        studio.jobs.cancel_owned(session)
        return live_runs.bump(session)

    unchanged = [gr.skip()] * len(panel.outputs())

    def run_live(number, prompt, negative, model, sampler_, steps_, cfg_, width_, height_, seed_, batch, image,
                 strength_, task_, scale_, border_, sides_, request: gr.Request):
        values = (prompt, negative, model, sampler_, steps_, cfg_, width_, height_, seed_, batch, image, strength_,
                  task_, scale_, border_, sides_)
        session = request.session_hash or ""
        if not number or not live_runs.is_newest(session, number):
            yield unchanged
            return
        time.sleep(DEBOUNCE_SECONDS)
        if not live_runs.is_newest(session, number):
            yield unchanged
            return
        for update in run_generation(studio, "consistency", request_from(values), checkpoint=values[2], owner=session,
                                     save=False):
            if not live_runs.is_newest(session, number):
                return          # overtaken: leave the page to the newer run
            yield update

    change_number = gr.State(0)
    triggers = [box.prompt.input, box.negative.input, steps.release, cfg.release, sampler.input, seed.input,
                strength.release, live.input]
    for trigger in triggers:
        trigger(on_change, live, change_number, queue=False, trigger_mode="multiple").then(
            run_live, [change_number, *fields], panel.outputs(), concurrency_limit=1, concurrency_id="generate",
            trigger_mode="always_last", show_progress="hidden")


TAB = Tab("consistency", "Consistency", build, receives=("Consistency",))
