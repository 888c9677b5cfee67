"""The img2img tab, with an Inpaint sub-tab where the mask is painted straight onto the uploaded picture."""
import gradio as gr

from engine.images import MASKED_CONTENT, RESIZE_MODES
from engine.request import INPAINT_AREAS

from .generation_form import build_request, prompt_box, sampling_controls
from .refiner import refiner_controls
from .results import results_panel, run_generation
from .sd_upscale_run import run_sd_upscale
from .studio import Destination, Studio, Tab
from .xyz import xyz_controls

MASK_MODES = ("Inpaint masked", "Inpaint not masked")


def mask_from_editor(value) -> tuple:
    """(picture, mask) from gr.ImageMask's value: the painted layers' alpha is the area to repaint."""
    if not value or value.get("background") is None:
        raise gr.Error("Upload a picture to inpaint first.")
    painted = [layer for layer in value.get("layers") or [] if layer is not None and layer.getbbox() is not None]
    if not painted:
        raise gr.Error("Paint over the area to repaint first (the brush on the picture).")
    mask = painted[0].getchannel("A")
    for layer in painted[1:]:
        mask.paste(255, mask=layer.getchannel("A"))
    return value["background"], mask


def build(studio: Studio) -> None:
    last_seed = gr.State(None)
    mode = gr.State("img2img")
    box = prompt_box(studio, "img2img", prompt="")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tabs(selected="img2img_upload") as subtabs:
                with gr.Tab("img2img", id="img2img_upload") as plain_tab:
                    init_image = gr.Image(label="Picture", type="pil", image_mode="RGBA",
                                          sources=["upload", "clipboard"], height=320, elem_id="img2img_image")
                with gr.Tab("Inpaint", id="img2img_inpaint") as inpaint_tab:
                    editor = gr.ImageMask(label="Picture (paint the area to repaint)", type="pil", height=320,
                                          sources=["upload", "clipboard"], elem_id="img2img_inpaint_image",
                                          brush=gr.Brush(colors=["#ffffff"], color_mode="fixed"))
                    with gr.Row():
                        mask_blur = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur")
                        mask_mode = gr.Radio(MASK_MODES, value=MASK_MODES[0], label="Mask mode")
                    masked_content = gr.Radio(list(MASKED_CONTENT), value="original", label="Masked content")
                    with gr.Row():
                        inpaint_area = gr.Radio(list(INPAINT_AREAS), value=INPAINT_AREAS[0], label="Inpaint area")
                        padding = gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels")
            plain_tab.select(lambda: "img2img", outputs=mode, queue=False)
            inpaint_tab.select(lambda: "inpaint", outputs=mode, queue=False)
            resize_mode = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], label="Resize mode")
            strength = gr.Slider(0, 1, value=0.75, step=0.01, label="Denoising strength", elem_id="img2img_strength")
            controls = sampling_controls(studio, "img2img", last_seed)
            refiner = refiner_controls(studio, "img2img")
            plot = xyz_controls(studio, "img2img")
            with gr.Accordion("SD upscale", open=False, elem_id="img2img_sd_upscale"):
                upscale_on = gr.Checkbox(False, label="SD upscale: upscale, then img2img in overlapping tiles of "
                                                       "width x height", elem_id="img2img_sd_upscale_enable")
                with gr.Row():
                    upscaler = gr.Dropdown(studio.state.upscaler_names(latent=False), value="Lanczos",
                                           label="Upscaler", elem_id="img2img_sd_upscale_upscaler")
                    upscale_by = gr.Slider(1, 4, value=2, step=0.05, label="Scale Factor",
                                           elem_id="img2img_sd_upscale_scale")
                    overlap = gr.Slider(0, 256, value=64, step=16, label="Tile overlap",
                                        elem_id="img2img_sd_upscale_overlap")
            upscaler.focus(lambda: gr.update(choices=studio.state.upscaler_names(latent=False)), outputs=upscaler,
                           queue=False)
        with gr.Column(scale=2):
            panel = results_panel(studio, "img2img", last_seed)
    studio.forms["img2img"] = (box, controls)
    studio.destinations["img2img"] = Destination("img2img", "img2img", init_image, box.prompt, box.negative,
                                                 subtabs, "img2img_upload")
    studio.destinations["inpaint"] = Destination("inpaint", "img2img", editor, box.prompt, box.negative,
                                                 subtabs, "img2img_inpaint")

    def run(values):
        refiner_name, switch_at = refiner.chosen(values)
        extra = dict(denoising_strength=float(values[strength]), resize_mode=values[resize_mode],
                     refiner_switch_at=switch_at)
        if values[mode] == "inpaint":
            picture, mask = mask_from_editor(values[editor])
            extra.update(init_image=picture, mask=mask, mask_blur=int(values[mask_blur]),
                         invert_mask=values[mask_mode] == MASK_MODES[1], masked_content=values[masked_content],
                         inpaint_area=values[inpaint_area], masked_padding=int(values[padding]))
        else:
            if values[init_image] is None:
                raise gr.Error("Upload a picture first.")
            extra["init_image"] = values[init_image]
        request = build_request(box, controls, values, **extra)
        script = None
        if values[upscale_on]:
            if values[mode] == "inpaint":
                raise gr.Error("SD upscale works on the img2img sub-tab's picture, not with a mask.")
            script = lambda progress, stop, skip: run_sd_upscale(   # noqa: E731
                studio, request, values[upscaler], float(values[upscale_by]), int(values[overlap]), progress, stop,
                skip)
        yield from run_generation(studio, "img2img", request, refiner=refiner_name, plot=plot.chosen(values),
                                  script=script)

    inputs = {*box.components(), *controls.components(), mode, init_image, editor, strength, resize_mode,
              mask_blur, mask_mode, masked_content, inpaint_area, padding, *refiner.components(), *plot.components(),
              upscale_on, upscaler, upscale_by, overlap}
    box.generate.click(run, inputs, panel.outputs(), concurrency_limit=1, concurrency_id="generate",
                       show_progress="minimal", show_progress_on=panel.progress)


TAB = Tab("img2img", "img2img", build, receives=("img2img", "inpaint"))
