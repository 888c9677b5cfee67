"""The Models & Settings tab: checkpoint and VAE (lists refresh without a restart), previews, saving, defaults."""
import gradio as gr

from engine.sampling import SAMPLERS, SCHEDULE_NAMES

from .model_state import ModelState
from .settings import PREVIEW_CHOICES, Settings
from .studio import Studio, Tab
from .styles_editor import styles_editor

NO_MODELS = ("No checkpoints found in `{folder}`. Put a `.safetensors` / `.ckpt` file or a diffusers folder there "
             "(A1111 layout), then press Refresh.")


def model_status(state: ModelState) -> str:
    return state.status if state.checkpoint_names() else NO_MODELS.format(folder=state.checkpoint_dir)


def build(studio: Studio) -> None:
    state, s = studio.state, studio.settings
    with gr.Row():
        checkpoint = gr.Dropdown(state.checkpoint_names(), value=state.default_checkpoint(), label="Checkpoint",
                                 scale=4, elem_id="settings_checkpoint")
        vae = gr.Dropdown(state.vae_names(), value=state.vae_choice, label="VAE", scale=3, elem_id="settings_vae")
        refresh = gr.Button("Refresh lists", scale=1, elem_id="settings_refresh")
        load = gr.Button("Load", variant="primary", scale=1, elem_id="settings_load")
    status = gr.Markdown(model_status(state), elem_id="settings_status")
    gr.Markdown("### Settings")
    with gr.Row():
        save_outputs = gr.Checkbox(s.save_outputs, label=f"Save every picture to {studio.outdir}")
        samples_format = gr.Dropdown(["png", "jpg", "webp"], value=s.samples_format, label="Save pictures as",
                                     elem_id="settings_samples_format")
        preview_method = gr.Dropdown(list(PREVIEW_CHOICES), value=s.preview_method, label="Live preview")
        preview_every = gr.Slider(1, 50, value=s.preview_every, step=1, label="Preview every N steps")
        decode_method = gr.Dropdown([("Full VAE", "Full"), ("TAESD", "TAESD")], value=s.decode_method,
                                    label="Decode with", elem_id="settings_decode_method",
                                    info="TAESD: the tiny decoder in models/VAE-approx, fast and a little softer")
    with gr.Row():
        sampler = gr.Dropdown(list(SAMPLERS), value=s.default_sampler, label="Default sampler")
        schedule = gr.Dropdown(SCHEDULE_NAMES, value=s.default_schedule, label="Default schedule")
        steps = gr.Slider(1, 150, value=s.default_steps, step=1, label="Default steps")
        cfg = gr.Slider(1, 30, value=s.default_cfg, step=0.5, label="Default CFG scale")
    negative = gr.Textbox(s.default_negative_prompt, label="Default negative prompt")
    apply = gr.Button("Apply settings", variant="primary", elem_id="settings_apply")
    applied = gr.Markdown("")

    def on_refresh():
        names, vaes = state.checkpoint_names(), state.vae_names()
        current = state.pipeline.source.name if state.pipeline else None
        return (gr.Dropdown(choices=names, value=current if current in names else (names[0] if names else None)),
                gr.Dropdown(choices=vaes, value=state.vae_choice if state.vae_choice in vaes else vaes[0]),
                model_status(state))

    refresh.click(on_refresh, outputs=[checkpoint, vae, status], queue=False)
    load.click(lambda name: state.load(name) if name else "Choose a checkpoint first.", checkpoint, status,
               concurrency_limit=1, concurrency_id="generate")

    def keep(settings: Settings) -> str:
        for key, value in vars(settings).items():
            setattr(studio.settings, key, value)
        try:
            studio.save_settings()
        except OSError as e:
            return f"Applied for this run; could not write {studio.settings_path}: {e.strerror or e}"
        return f"Applied and saved to {studio.settings_path}. New defaults show when a page is (re)loaded."

    def on_vae(name):
        message = state.set_vae(name)
        if state.vae_choice == name:
            keep(Settings(**{**vars(studio.settings), "vae": name}))
        return message

    vae.input(on_vae, vae, status, concurrency_limit=1, concurrency_id="generate")

    def on_apply(save, fmt, method, every, decode, sampler, schedule, steps, cfg, negative):
        new = Settings(**{**vars(studio.settings), "save_outputs": save, "samples_format": fmt,
                          "preview_method": method, "preview_every": int(every), "vae": state.vae_choice,
                          "decode_method": decode,
                          "default_sampler": sampler, "default_schedule": schedule, "default_steps": int(steps),
                          "default_cfg": float(cfg), "default_negative_prompt": negative})
        try:
            new.check()
        except ValueError as e:
            raise gr.Error(str(e)) from e
        return keep(new)

    apply.click(on_apply, [save_outputs, samples_format, preview_method, preview_every, decode_method, sampler,
                           schedule, steps, cfg, negative],
                applied, queue=False)
    styles_editor(studio)


TAB = Tab("settings", "Models & Settings", build)
