"""The right-hand column of a generating tab: progress, live preview, gallery, infotext, send-to buttons,
and the generator that runs a request while it keeps them up to date."""
import logging
import threading
import traceback
from dataclasses import dataclass

import gradio as gr
from PIL import Image

from engine import EngineError, GenerationRequest
from engine.preview import Previewer, VAEApprox, find_vae_approx
from engine.images import to_pil
from engine.infotext import parse_infotext

from .jobs import Job, progress_html
from .outputs import save_result
from .studio import Studio
from .xyz_run import run_xyz

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25
GROUP = "ControlNet "     # destinations "ControlNet <mode>" share one button and a mode chooser


@dataclass
class ResultsPanel:
    progress: gr.HTML
    preview: gr.Image
    gallery: gr.Gallery
    info: gr.Textbox
    results: gr.State       # [(image, infotext), ...] of the last run in this browser tab
    selected: gr.State      # index of the picture chosen in the gallery
    last_seed: gr.State

    def outputs(self) -> list:
        return [self.progress, self.preview, self.gallery, self.info, self.results, self.selected, self.last_seed]


def results_panel(studio: Studio, tab_id: str, last_seed: gr.State) -> ResultsPanel:
    progress = gr.HTML("", elem_id=f"{tab_id}_progress")
    preview = gr.Image(label="Live preview", interactive=False, height=160, elem_id=f"{tab_id}_preview",
                       visible=studio.settings.preview_method != "None")
    gallery = gr.Gallery(label="Output", columns=2, height=360, object_fit="contain", elem_id=f"{tab_id}_gallery")
    info = gr.Textbox(label="Generation parameters", lines=4, interactive=False, elem_id=f"{tab_id}_info")
    results, selected = gr.State([]), gr.State(0)
    names = studio.destination_names
    grouped = [n.removeprefix(GROUP) for n in names if n.startswith(GROUP)]
    with gr.Row():
        for name in (n for n in names if not n.startswith(GROUP)):
            button = gr.Button(f"Send to {name}", size="sm", elem_id=f"{tab_id}_send_to_{name}")
            studio.pending_sends.append((button, [name], None, results, selected))
        if grouped:
            chooser = gr.Dropdown(grouped, value=grouped[0], show_label=False, container=False, min_width=100,
                                  elem_id=f"{tab_id}_send_to_controlnet_mode")
            button = gr.Button("Send to ControlNet", size="sm", elem_id=f"{tab_id}_send_to_controlnet")
            studio.pending_sends.append((button, [GROUP + g for g in grouped], chooser, results, selected))

    def on_select(results, event: gr.SelectData):
        index = event.index if isinstance(event.index, int) else 0
        return index, results[index][1] if index < len(results) else ""

    gallery.select(on_select, results, [selected, info], queue=False)
    return ResultsPanel(progress, preview, gallery, info, results, selected, last_seed)


def _previewer(studio: Studio, checkpoint: str | None = None) -> Previewer | None:
    method = studio.settings.preview_method
    if method == "None" or (checkpoint is None and studio.state.pipeline is None):
        return None
    try:
        pipe = studio.state.pipeline_for(checkpoint)
    except EngineError:
        return None
    approx_path = find_vae_approx(studio.state.models_dir) if method == "Approx NN" else None
    approx = VAEApprox.load(approx_path) if approx_path else None
    tiny = pipe.tiny_vae if method == "TAESD" else None
    return Previewer(method, vae=pipe.vae, approx=approx, latent_rgb=pipe.latent_rgb, tiny=tiny)


def run_generation(studio: Studio, tab: str, request: GenerationRequest, checkpoint: str | None = None,
                   owner: str = "", save: bool = True, refiner: str | None = None, plot: dict | None = None,
                   script=None):
    """Generator for a Gradio event: yields panel updates while the engine works in a thread.
    `checkpoint` names a model other than the loaded one; `owner` marks a live run its session may cancel;
    `save` False shows the pictures without saving them (live previews); `refiner` names the checkpoint that
    takes over at request.refiner_switch_at; `plot`: run an X/Y/Z plot of the request (ui.xyz_run settings);
    `script(progress, should_stop, should_skip)`: run that instead (SD upscale)."""
    job = Job(tab, owner)
    outcome = {}
    previewer = _previewer(studio, checkpoint)
    request.decode_method = studio.settings.decode_method

    def on_progress(done, total, denoised):
        job.steps_done, job.total_steps = done, total
        if previewer is not None and (done % studio.settings.preview_every == 0) and done < total:
            job.preview = to_pil(previewer(denoised[:1]) * 2 - 1)[0]
            job.preview_number += 1

    def work():
        try:
            if script is not None:
                outcome["result"] = studio.jobs.run(job, lambda: script(on_progress, job.should_stop,
                                                                        job.take_skip))
            elif plot is not None:
                cells_tab = tab if save and studio.settings.save_outputs else None
                outcome["result"] = studio.jobs.run(job, lambda: run_xyz(
                    studio, request, progress=on_progress, should_stop=job.should_stop, should_skip=job.take_skip,
                    checkpoint=checkpoint, refiner=refiner, tab=cells_tab, **plot))
            else:
                outcome["result"] = studio.jobs.run(job, lambda: studio.state.generate(
                    request, on_progress, job.should_stop, job.take_skip, checkpoint, refiner))
        except EngineError as e:
            outcome["error"] = str(e)
        except Exception as e:   # a bug or an out-of-memory: say so, keep serving
            log.error("generation failed\n%s", traceback.format_exc())
            outcome["error"] = f"Generation failed: {type(e).__name__}: {e}"

    thread = threading.Thread(target=work, name=f"generate-{tab}", daemon=True)
    thread.start()
    shown = 0
    keep = gr.skip()
    while thread.is_alive():
        thread.join(POLL_SECONDS)
        preview = keep
        if job.preview_number != shown and job.preview is not None:
            shown, preview = job.preview_number, job.preview
        yield progress_html(job), preview, keep, keep, keep, keep, keep
    if "error" in outcome:
        raise gr.Error(outcome["error"])
    result = outcome["result"]
    saved_note = _save(studio, tab, result, bool(result.grids)) if save else \
        "Live picture, not saved: press Generate to keep it."
    pairs = list(zip(result.images, result.infotexts))
    status = "Interrupted. " if result.interrupted else ""
    done = f'<div class="studio-progress idle">{status}{len(pairs)} picture(s). {saved_note}</div>'
    return_seed = result.seeds[0] if result.seeds else None
    yield (done, None, [image for image, _ in pairs], pairs[0][1] if pairs else "", pairs, 0, return_seed)


def _save(studio: Studio, tab: str, result, grids_only: bool = False) -> str:
    if not studio.settings.save_outputs:
        return "Not saved (saving is off in Models & Settings)."
    try:
        paths = save_result(result, studio.outdir, tab, studio.settings.samples_format, grids_only)
    except OSError as e:
        gr.Warning(f"Could not save to {studio.outdir}: {e.strerror or e}. The pictures are still shown here.")
        return "Not saved."
    return f"Saved to {paths[-1].parent}." if paths else ""


def wire_send_buttons(studio: Studio) -> None:
    """Connect every "Send to ..." button now that all destinations are registered."""
    for button, names, chooser, results, selected in studio.pending_sends:
        targets = [studio.destinations[n] for n in names if n in studio.destinations]
        if not targets:
            button.visible = False
            continue
        outputs = []
        for t in targets:
            outputs += [c for c in (t.image, t.prompt, t.negative, t.subtabs) if c is not None and c not in outputs]
        outputs.append(studio.tabs)

        def send(results, selected, choice=None, targets=targets, outputs=outputs):
            if not results:
                raise gr.Error("Generate a picture first.")
            target = next((t for t in targets if t.name.endswith(" " + str(choice))), targets[0])
            image, infotext = results[min(selected, len(results) - 1)]
            picture = _as_image(image)
            if isinstance(target.image, gr.ImageEditor):       # a canvas: the picture, nothing painted yet
                picture = {"background": picture, "layers": [], "composite": picture}
            fields = parse_infotext(infotext)
            values = {target.image: picture, target.subtabs: gr.Tabs(selected=target.subtab_id),
                      target.prompt: fields.get("Prompt", ""), target.negative: fields.get("Negative prompt", ""),
                      studio.tabs: gr.Tabs(selected=target.tab_id)}
            return [values[c] if c in values else gr.skip() for c in outputs]

        inputs = [results, selected] + ([chooser] if chooser is not None else [])
        button.click(send, inputs, outputs, queue=False)


def _as_image(image):
    return image if isinstance(image, Image.Image) else Image.open(image)
