"""The Extras tab, as A1111's: upscale one picture, several, or a whole folder from your computer, by a
factor or to a size, with one or two upscalers (the second blended in at its visibility). Results are saved
to outputs/extras-images/ with the picture's own parameters and the "Postprocess ..." fields."""
import gradio as gr
from PIL import Image, UnidentifiedImageError

from engine import EngineError
from engine.extras import ExtrasUpscale, upscale_picture

from .jobs import Job
from .outputs import save_image
from .studio import Studio, Tab

SINGLE, BATCH, FOLDER = "extras_single", "extras_batch", "extras_folder"


def build(studio: Studio) -> None:
    chosen_input, chosen_mode = gr.State(SINGLE), gr.State(0)
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tabs():
                with gr.Tab("Single Image", id=SINGLE) as single_tab:
                    single = gr.Image(label="Source", type="pil", sources=["upload", "clipboard"], height=320,
                                      elem_id="extras_image")
                with gr.Tab("Batch Process", id=BATCH) as batch_tab:
                    batch = gr.File(label="Pictures", file_count="multiple", file_types=["image"],
                                    elem_id="extras_image_batch")
                with gr.Tab("Batch from Folder", id=FOLDER) as folder_tab:
                    folder = gr.File(label="A folder of pictures (from your computer)", file_count="directory",
                                     elem_id="extras_folder")
            generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            with gr.Tabs():
                with gr.Tab("Scale by", id="extras_scale_by") as by_tab:
                    with gr.Row():
                        scale = gr.Slider(1, 8, value=4, step=0.05, label="Resize", elem_id="extras_upscaling_resize")
                        max_side = gr.Number(0, label="Max side length (0: no limit)", precision=0, step=8,
                                             elem_id="extras_upscale_max_side_length")
                with gr.Tab("Scale to", id="extras_scale_to") as to_tab:
                    with gr.Row():
                        width = gr.Slider(64, 8192, value=512, step=8, label="Width",
                                          elem_id="extras_upscaling_resize_w")
                        height = gr.Slider(64, 8192, value=512, step=8, label="Height",
                                           elem_id="extras_upscaling_resize_h")
                        crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
            names = studio.state.upscaler_names(latent=False)
            upscaler_1 = gr.Dropdown(names, value="None", label="Upscaler 1", elem_id="extras_upscaler_1")
            with gr.Row():
                upscaler_2 = gr.Dropdown(names, value="None", label="Upscaler 2", elem_id="extras_upscaler_2")
                visibility = gr.Slider(0, 1, value=0, step=0.001, label="Upscaler 2 visibility",
                                       elem_id="extras_upscaler_2_visibility")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Result", columns=2, height=420, elem_id="extras_gallery")
            info = gr.HTML(elem_id="extras_info")
    for tab, value in ((single_tab, SINGLE), (batch_tab, BATCH), (folder_tab, FOLDER)):
        tab.select(lambda v=value: v, outputs=chosen_input, queue=False)
    by_tab.select(lambda: 0, outputs=chosen_mode, queue=False)
    to_tab.select(lambda: 1, outputs=chosen_mode, queue=False)
    for dropdown in (upscaler_1, upscaler_2):
        dropdown.focus(lambda: gr.update(choices=studio.state.upscaler_names(latent=False)), outputs=dropdown,
                       queue=False)

    def run(source, picture, files, folder_files, mode, by, limit, to_w, to_h, fit, first, second, blend):
        pictures, note = pictures_from(source, picture, files, folder_files)
        settings = ExtrasUpscale(upscaler_1=first or "None", upscaler_2=second or "None",
                                 upscaler_2_visibility=float(blend), mode=int(mode), scale=float(by),
                                 max_side_length=int(limit or 0), width=int(to_w), height=int(to_h), crop=bool(fit))
        steps = studio.state.upscalers.steps()
        try:
            done = studio.jobs.run(Job("extras"), lambda: [upscale_picture(p, settings, steps) for _, p in pictures])
        except EngineError as e:
            raise gr.Error(str(e)) from e
        results = []
        for (name, source_picture), (image, fields) in zip(pictures, done):
            text = ", ".join(f"{k}: {v}" for k, v in fields.items())
            own = source_picture.info.get("parameters", "")
            image.info["parameters"] = f"{own}, {text}" if own and text else own or text
            if studio.settings.save_outputs:
                save_image(image, image.info["parameters"], name, studio.outdir, "extras",
                           fmt=studio.settings.samples_format)
            results.append((image, name))
        summary = ", ".join(f"{k}: {v}" for k, v in done[0][1].items()) if done else ""
        return results, f"<p>{len(results)} picture(s). {summary}</p>{note}"

    generate.click(run, [chosen_input, single, batch, folder, chosen_mode, scale, max_side, width, height, crop,
                         upscaler_1, upscaler_2, visibility], [gallery, info],
                   concurrency_limit=1, concurrency_id="generate")


def pictures_from(source, picture, files, folder_files) -> tuple[list[tuple[str, Image.Image]], str]:
    """(name, picture) pairs from the chosen input, and a note naming files that are not pictures."""
    if source == SINGLE:
        if picture is None:
            raise gr.Error("Drop a picture into Source first.")
        return [("image", picture)], ""
    paths = (files if source == BATCH else folder_files) or []
    pictures, skipped = [], []
    for path in paths:
        name = str(path).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        try:
            with Image.open(path) as image:
                image.load()
                pictures.append((name, image.copy()))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            skipped.append(name)
    if not pictures:
        raise gr.Error("No pictures found: " + ("choose some pictures." if source == BATCH else "choose a folder."))
    note = f"<p>Not pictures, skipped: {', '.join(skipped)}</p>" if skipped else ""
    return pictures, note


TAB = Tab("extras", "Extras", build)
