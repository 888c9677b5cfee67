"""The PNG Info tab: drop a picture, read the parameters it was made with, send them to a generating tab."""
import gradio as gr
from PIL import Image, UnidentifiedImageError

from engine.infotext import parse_infotext
from engine.styles import extract_styles
from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .hires import pasted as hires_values
from .refiner import pasted as refiner_values
from .studio import Studio, Tab


def read_parameters(path: str | None) -> str:
    """The infotext stored in a picture (PNG text chunk, or JPEG/WebP EXIF UserComment as A1111 writes it)."""
    if not path:
        return ""
    try:
        with Image.open(path) as image:
            text = image.info.get("parameters")
            if text is None:
                comment = image.getexif().get_ifd(0x8769).get(0x9286)   # Exif IFD -> UserComment
                if isinstance(comment, bytes):
                    text = comment.removeprefix(b"UNICODE\0").decode("utf-16-be", errors="replace").strip("\0")
                elif comment:
                    text = str(comment)
    except (UnidentifiedImageError, OSError) as e:
        raise gr.Error(f"Not a readable picture: {e}") from e
    return text or ""


def sampler_and_schedule(fields: dict) -> tuple[str | None, str | None]:
    """A1111 once wrote the schedule into the sampler's name ("DPM++ 2M Karras"); split it off."""
    sampler, schedule = fields.get("Sampler"), fields.get("Schedule type")
    if sampler and sampler not in SAMPLERS:
        for name in SCHEDULE_NAMES:
            if sampler.endswith(" " + name) and sampler[:-len(name) - 1] in SAMPLERS:
                sampler, schedule = sampler[:-len(name) - 1], name
    return (sampler if sampler in SAMPLERS else None), (schedule if schedule in SCHEDULE_NAMES else None)


def form_values(fields: dict) -> list:
    """Updates for a tab's prompt box and sampling controls from parsed infotext fields (absent: unchanged)."""
    def number(key, kind=int):
        try:
            return kind(fields[key])
        except (KeyError, ValueError):
            return gr.skip()

    sampler, schedule = sampler_and_schedule(fields)
    return [fields.get("Prompt", ""), fields.get("Negative prompt", ""), sampler or gr.skip(),
            schedule or gr.skip(), number("Steps"), number("Size-1"), number("Size-2"), number("CFG scale", float),
            number("Seed"), fields.get("Tiling") == "True"]


def build(studio: Studio) -> None:
    with gr.Row():
        with gr.Column():
            picture = gr.Image(label="Picture", type="filepath", sources=["upload", "clipboard"], height=360,
                               elem_id="png_info_image")
        with gr.Column():
            text = gr.Textbox(label="Parameters", lines=6, interactive=False, elem_id="png_info_text")
            table = gr.JSON(label="Fields")
            with gr.Row():
                send_buttons = {tab: gr.Button(f"Send to {tab}", size="sm", elem_id=f"png_info_send_to_{tab}")
                                for tab in ("txt2img", "img2img")}

    def on_upload(path):
        found = read_parameters(path)
        if path and not found:
            return "This picture carries no generation parameters.", {}
        return found, parse_infotext(found) if found else {}

    picture.change(on_upload, picture, [text, table])

    for tab_id, button in send_buttons.items():
        box, controls = studio.forms[tab_id]
        outputs = [box.prompt, box.negative, box.styles, controls.sampler, controls.schedule, controls.steps, controls.width,
                   controls.height, controls.cfg, controls.seed, controls.tiling,
                   *studio.refiners[tab_id].components()]
        hires = studio.hires.get(tab_id)
        outputs += [*(hires.components() if hires else []), studio.tabs]
        extra_image = studio.destinations.get(tab_id) if tab_id == "img2img" else None
        if extra_image is not None:
            outputs += [extra_image.image, extra_image.subtabs]

        def send(found, path, tab_id=tab_id, with_image=extra_image is not None, with_hires=hires is not None):
            if not found or found.startswith("This picture carries"):
                raise gr.Error("Drop a picture with generation parameters first.")
            fields = parse_infotext(found)
            names, fields["Prompt"], fields["Negative prompt"] = extract_styles(
                fields.get("Prompt", ""), fields.get("Negative prompt", ""), studio.styles.styles())
            values = form_values(fields)
            styles = gr.Dropdown(choices=studio.styles.names(), value=names) if names else gr.skip()
            values[2:2] = [styles]                      # the Styles list, after prompt and negative prompt
            values += refiner_values(fields, studio.state.checkpoint_names())
            if with_hires:
                values += hires_values(fields, studio.state.checkpoint_names(), studio.state.upscaler_names())
            values += [gr.Tabs(selected=tab_id)]
            if with_image:
                values += [Image.open(path), gr.Tabs(selected="img2img_upload")]
            return values

        button.click(send, [text, picture], outputs, queue=False)


TAB = Tab("png_info", "PNG Info", build)
