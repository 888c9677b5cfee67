"""AUTOMATIC1111's REST API (`--api`) on the app's own FastAPI server: the same paths, fields and answers.

Generations go through the same job queue as the tabs (`Jobs.run`), so /progress, /interrupt and /skip act
on whatever runs, whoever started it. Bad input is a 422 with a sentence saying what is wrong.
"""
import functools
import html
import os
import secrets
from pathlib import Path

import cv2
import torch
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from engine import EngineError
from engine.images import to_pil
from engine.infotext import parse_infotext
from engine.preview import linear_preview
from engine.sampling import SAMPLERS, SCHEDULE_NAMES
from engine.styles import apply_styles
from engine.xyz import a1111_axis_list
from engine.version import __version__

from ..jobs import Job
from ..model_state import AUTOMATIC_VAE
from ..outputs import save_result
from ..studio import Studio
from .controlnet import control_units, controlnet_router
from .extras import extras_router
from .convert import PayloadError, decode_image, encode_image, info_json, schedule_id, to_request
from .options import apply_options, checkpoint_name, current_options
from .shown_paths import ShownPaths
from .schemas import GenerationResponse, Img2ImgPayload, PngInfoPayload, Txt2ImgPayload
from .options import decode_method
from .unused import refuse_missing_scripts, unused_field_warnings
from .xyz import ARGS as XYZ_ARGS, is_xyz, xyz_settings
from .zero_shot import ARGS as ZERO_SHOT_ARGS, NAME as ZERO_SHOT, zero_shot_edit
from engine.zero_shot import TASKS as ZERO_SHOT_TASKS
from ..sd_upscale_run import run_sd_upscale
from ..xyz_run import run_xyz
from .sd_upscale import is_sd_upscale, sd_upscale_settings

INNER_MODEL_SCHEDULES = {"Uniform", "SGM Uniform", "Simple", "Normal", "DDIM", "Beta", "LCM"}   # A1111's flag

PREFIX = "/sdapi/v1"
APP_DIR = Path(__file__).resolve().parents[2]


def create_api(app: FastAPI, studio: Studio, users: list[tuple[str, str]] | None = None,
               flags: dict | None = None) -> None:
    """Add A1111's routes to `app`; with `users`, every route asks for HTTP Basic credentials."""
    shown = ShownPaths(studio.state.models_dir, studio.outdir, APP_DIR)
    route_class = unprocessable_route(shown)
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(basic_auth(users))] if users else [],
                       route_class=route_class)
    state, jobs = studio.state, studio.jobs

    def generate(payload, tab: str) -> dict:
        refuse_missing_scripts(payload)
        overrides = payload.override_settings or {}
        checkpoint = overrides.get("sd_model_checkpoint")
        checkpoint = checkpoint_name(studio, checkpoint) if checkpoint else None
        pipe = state.pipeline_for(checkpoint)
        request = to_request(payload, pipe.native_size, int(overrides.get("CLIP_stop_at_last_layers",
                                                                          studio.settings.clip_skip)))
        ensd = overrides.get("eta_noise_seed_delta", studio.settings.api_options.get("eta_noise_seed_delta", 0))
        if isinstance(ensd, bool) or not isinstance(ensd, (int, float, str)) or not str(ensd).strip().isdigit():
            raise PayloadError(f"eta_noise_seed_delta: a whole number from 0, not {ensd!r}")
        request.eta_noise_seed_delta = int(str(ensd).strip())
        request.decode_method = decode_method(overrides.get("sd_vae_decode_method", studio.settings.decode_method))
        chosen, unknown_styles = studio.styles.chosen(list(payload.styles or []))
        request.prompt, request.negative_prompt = apply_styles(request.prompt, request.negative_prompt, chosen)
        if request.hires is not None and (request.hires.prompt or request.hires.negative_prompt):
            request.hires.prompt, request.hires.negative_prompt = apply_styles(
                request.hires.prompt or payload.prompt, request.hires.negative_prompt or payload.negative_prompt or "",
                chosen)
        scripts = {k.lower(): v for k, v in (payload.alwayson_scripts or {}).items()}
        request.zero_shot = zero_shot_edit(scripts.get(ZERO_SHOT), request.init_image, tab)
        if request.zero_shot is not None:       # the task decides the size
            request.width, request.height = request.zero_shot.canvas_size()
        control = control_units(studio, scripts.get("controlnet"), request.width, request.height,
                                request.init_image)
        request.control_units = control.units
        if request.hires is not None and request.hires.checkpoint:
            request.hires.checkpoint = checkpoint_name(studio, request.hires.checkpoint, "hr_checkpoint_name")
        refiner = payload.refiner_checkpoint
        refiner = checkpoint_name(studio, refiner, "refiner_checkpoint") if refiner not in (None, "", "None") else None
        job = Job(f"api-{tab}")

        def on_progress(done, total, denoised):
            job.steps_done, job.total_steps, job.latent = done, total, denoised[:1]

        if is_sd_upscale(payload.script_name):
            if tab != "img2img":
                raise PayloadError("script_name: SD upscale is an img2img script")
            upscaler, scale, overlap = sd_upscale_settings(list(payload.script_args or []),
                                                           state.upscaler_names(latent=False))
            result = jobs.run(job, lambda: run_sd_upscale(studio, request, upscaler, scale, overlap, on_progress,
                                                          job.should_stop, job.take_skip, checkpoint))
        elif is_xyz(payload.script_name):
            plot = xyz_settings(list(payload.script_args or []), tab == "img2img")
            result = jobs.run(job, lambda: run_xyz(studio, request, progress=on_progress, should_stop=job.should_stop,
                                                   should_skip=job.take_skip, checkpoint=checkpoint, refiner=refiner,
                                                   tab=tab if payload.save_images else None, **plot))
        else:
            result = jobs.run(job, lambda: state.generate(request, on_progress, job.should_stop, job.take_skip,
                                                          checkpoint, refiner))
        warnings = unused_field_warnings(payload) + control.warnings + [
            f"styles: no style named {name!r} in {studio.styles.path.name}; left out" for name in unknown_styles]
        if payload.save_images:
            try:
                save_result(result, studio.outdir, tab, studio.settings.samples_format,
                            grids_only=is_xyz(payload.script_name))   # the cells were saved as they came
            except OSError as e:     # the pictures still go back to the client
                warnings.append(f"Could not save to {shown.path(studio.outdir)}: {e.strerror or e}")
        hidden = set() if getattr(payload, "include_init_images", False) else {"init_images", "mask"}
        parameters = {k: v for k, v in payload.model_dump().items()     # A1111's fields only, as it answers
                      if k in type(payload).model_fields and k not in hidden}
        pictures = [*result.images, *control.detected_maps]      # the maps after the pictures, as the extension
        return {"images": [encode_image(im) for im in pictures] if payload.send_images else [],
                "parameters": parameters,
                "info": info_json(payload, request, result, pipe.name, pipe.model_hash, pipe.vae_name, warnings)}

    @router.post("/txt2img", response_model=GenerationResponse)
    def txt2img(payload: Txt2ImgPayload):
        return generate(payload, "txt2img")

    @router.post("/img2img", response_model=GenerationResponse)
    def img2img(payload: Img2ImgPayload):
        return generate(payload, "img2img")

    @router.get("/progress")
    def progress(skip_current_image: bool = False):
        job = jobs.current
        if job is None:
            return {"progress": 0.0, "eta_relative": 0.0, "state": job_state(None), "current_image": None,
                    "textinfo": None}
        image = None
        latent = getattr(job, "latent", None)
        if not skip_current_image and latent is not None:
            pipe = state.pipeline
            rgb = linear_preview(latent, pipe.latent_rgb) if pipe is not None else None
            image = encode_image(to_pil(rgb * 2 - 1)[0]) if rgb is not None else None
        return {"progress": round(job.fraction, 4), "eta_relative": round(job.eta_seconds or 0.0, 2),
                "state": job_state(job), "current_image": image,
                "textinfo": f"Step {job.steps_done}/{job.total_steps}"}

    @router.post("/interrupt")
    def interrupt():
        jobs.interrupt()
        return {}

    @router.post("/skip")
    def skip():
        jobs.skip()
        return {}

    @router.get("/sd-models")
    def sd_models():
        """Titles carry " [hash]" for every checkpoint hashed once (when it was loaded), as A1111's cache does."""
        loaded, known = state.pipeline, studio.settings.model_hashes
        models = []
        for name in state.checkpoint_names():
            path = state.resolve(name)
            stamp = [path.stat().st_size, path.stat().st_mtime_ns] if path.is_file() else [0, 0]
            if loaded is not None and loaded.source.resolve() == path and loaded.model_hash \
                    and known.get(name) != [*stamp, loaded.model_hash]:
                known[name] = [*stamp, loaded.model_hash]
                try:
                    studio.save_settings()
                except OSError:         # a cache: the titles still carry the hash for this run
                    pass
            short = known[name][2] if name in known and known[name][:2] == stamp else None
            models.append({"title": f"{name} [{short}]" if short else name, "model_name": Path(name).stem,
                           "hash": short, "sha256": None, "filename": shown.path(path), "config": None})
        return models

    @router.get("/hypernetworks")
    def hypernetworks():
        return []                       # this app has no hypernetworks

    @router.get("/face-restorers")
    def face_restorers():
        return []                       # nor face restoration

    @router.get("/scripts")
    def scripts():
        return {"txt2img": ["x/y/z plot"], "img2img": ["x/y/z plot", "sd upscale"]}     # ControlNet: always on

    @router.get("/script-info")
    def script_info():
        return [entry for tab in ("txt2img", "img2img") for entry in (
            {"name": "x/y/z plot", "is_alwayson": False, "is_img2img": tab == "img2img",
             "args": [{"label": label, "value": None, "minimum": None, "maximum": None, "step": None,
                       "choices": a1111_axis_list(tab == "img2img") if label.endswith("type") else None}
                      for label in XYZ_ARGS]},
            {"name": "controlnet", "is_alwayson": True, "is_img2img": tab == "img2img", "args": []},
            *([{"name": ZERO_SHOT, "is_alwayson": True, "is_img2img": True,
                "args": [{"label": label, "value": None, "minimum": None, "maximum": None, "step": None,
                          "choices": [t.lower() for t in ZERO_SHOT_TASKS] if label == "task" else None}
                         for label in ZERO_SHOT_ARGS]}] if tab == "img2img" else []))]

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints():
        return {}

    @router.get("/samplers")
    def samplers():
        return [{"name": name, "aliases": [name.lower().replace(" ", "_").replace("+", "p")],
                 "options": {"scheduler": schedule_id(spec.default_schedule)}} for name, spec in SAMPLERS.items()]

    @router.get("/schedulers")
    def schedulers():
        return [{"name": schedule_id(name), "label": name, "aliases": ["SGMUniform"] if name == "SGM Uniform" else None,
                 "default_rho": {"Karras": 7.0, "Polyexponential": 1.0}.get(name, -1),
                 "need_inner_model": name in INNER_MODEL_SCHEDULES} for name in SCHEDULE_NAMES]

    @router.get("/prompt-styles")
    def prompt_styles():
        return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                for s in studio.styles.styles().values()]

    @router.get("/sd-vae")
    def sd_vae():
        return [{"model_name": name, "filename": shown.path(state.vae_dir / name)} for name in state.vae_names()
                if name != AUTOMATIC_VAE]

    @router.get("/loras")
    def loras():
        return [{"name": name, "alias": name, "path": shown.path(path), "metadata": {}}
                for name, path in ((p.stem, p) for p in lora_paths(studio))]

    @router.get("/embeddings")
    def embeddings():
        """A1111's answer: the embeddings that fit the loaded model, and those skipped (another family)."""
        pipe = state.pipeline
        widths = [t.encoder.config.hidden_size for t in pipe.prompts.towers] if pipe is not None else []
        found, _ = state.embeddings.embeddings()
        usable, skipped = state.embeddings.usable(widths) if widths else ({}, {})

        def entry(name):
            e = found.get(name)
            return {"step": e.step if e else None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                    "shape": list(e.vectors.values())[-1].shape[-1] if e else None, "vectors": e.count if e else None}
        return {"loaded": {name: entry(name) for name in usable},
                "skipped": {name: entry(name) for name in skipped}}

    @router.post("/refresh-loras")
    def refresh_loras():
        return {}

    @router.get("/options")
    def get_options():
        return current_options(studio, shown)

    @router.post("/options")
    def set_options(options: dict):
        ignored = apply_options(studio, options)
        return {"warnings": [f"{key}: stored and answered back; this app does not act on it" for key in ignored]} \
            if ignored else None

    @router.get("/cmd-flags")
    def cmd_flags():
        return {k: shown.path(v) if isinstance(v, Path) or (isinstance(v, str) and os.path.isabs(v)) else v
                for k, v in (flags or {}).items()}

    @router.get("/memory")
    def memory():
        return memory_report()

    @router.post("/png-info")
    def png_info(payload: PngInfoPayload):
        if not payload.image:
            return {"info": "", "items": {}, "parameters": {}}
        image = decode_image(payload.image, "image")
        text = image.info.get("parameters", "")
        items = {k: v for k, v in image.info.items() if isinstance(v, str) and k != "parameters"}
        return {"info": text, "items": items, "parameters": parse_infotext(text) if text else {}}

    app.include_router(router)
    app.include_router(controlnet_router(studio, router.dependencies, route_class))
    app.include_router(extras_router(studio, router.dependencies, route_class, shown))
    docs = APIRouter(dependencies=router.dependencies)
    schema = functools.cache(lambda: get_openapi(title="Stable Diffusion studio: AUTOMATIC1111-compatible API",
                                                 version=__version__, routes=router.routes))
    # /openapi.json is Gradio's own; this API's description sits under its prefix
    docs.add_api_route(f"{PREFIX}/openapi.json", lambda: schema(), include_in_schema=False)
    docs.add_api_route("/docs", lambda: HTMLResponse(docs_page(schema())), include_in_schema=False)
    app.include_router(docs)


def docs_page(schema: dict) -> str:
    """The OpenAPI description as a plain page: Swagger UI would need a CDN, and this app works offline."""
    components = schema.get("components", {}).get("schemas", {})
    rows = []
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            name = body.get("$ref", "").rsplit("/", 1)[-1]
            fields = ", ".join(f"{k}" + (f" = {v['default']!r}" if "default" in v else "")
                               for k, v in components.get(name, {}).get("properties", {}).items())
            rows.append(f"<tr><td><b>{method.upper()}</b></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(fields)}</td></tr>")
    return (f"<!doctype html><title>{html.escape(schema['info']['title'])}</title>"
            f"<h1>{html.escape(schema['info']['title'])}</h1><p>Machine-readable: <a href='{PREFIX}/openapi.json'>"
            f"{PREFIX}/openapi.json</a>. Pictures travel as base64 PNG. Errors in the input answer 422 with "
            "<code>{\"error\", \"detail\"}</code>.</p><table border=1 cellpadding=4>"
            "<tr><th>method</th><th>path</th><th>body fields (defaults)</th></tr>" + "".join(rows) + "</table>")


def unprocessable_route(shown: ShownPaths) -> type[APIRoute]:
    class Route(UnprocessableRoute):
        shown_paths = shown
    return Route


def out_of_memory(e: Exception) -> bool:
    """torch's and Python's, and OpenCV's allocation failure (its error -4, "Insufficient memory")."""
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, cv2.error) and ("Insufficient memory" in str(e) or "Failed to allocate" in str(e)))


class UnprocessableRoute(APIRoute):
    """Errors a client's input causes (PayloadError, the engine's own errors) answer 422 with the sentence
    that says what is wrong; running out of memory answers 507. Added to a running server, so the handling
    lives in the route, not the app. Messages show paths as `shown_paths` does."""
    shown_paths = ShownPaths(Path("models"), Path("outputs"))

    def get_route_handler(self):
        handler = super().get_route_handler()

        @functools.wraps(handler)
        async def answer(request: Request):
            try:
                return await handler(request)
            except RequestValidationError as e:     # as FastAPI answers, minus the echoed input (may be NaN)
                problems = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
                            for err in e.errors()]
                detail = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems)
                return JSONResponse(status_code=422, content={"error": "RequestValidationError", "detail": detail,
                                                              "errors": problems})
            except (PayloadError, EngineError, ValueError) as e:
                return JSONResponse(status_code=422, content={"error": type(e).__name__,
                                                              "detail": self.shown_paths.text(str(e))})
            except Exception as e:
                if not out_of_memory(e):
                    raise
                return JSONResponse(status_code=507, content={
                    "error": "OutOfMemory", "detail": "Not enough memory for this request: ask for a smaller size "
                                                      "or batch. The server goes on serving."})
        return answer


def basic_auth(users: list[tuple[str, str]]):
    security = HTTPBasic()

    def check(credentials: HTTPBasicCredentials = Depends(security)):
        for user, password in users:
            if (secrets.compare_digest(credentials.username, user)
                    and secrets.compare_digest(credentials.password, password)):
                return
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})
    return check


def job_state(job: Job | None) -> dict:
    return {"skipped": bool(job and job.skip_requested), "interrupted": bool(job and job.interrupted),
            "stopping_generation": False, "job": job.tab if job else "", "job_count": 1 if job else 0,
            "job_timestamp": "0", "job_no": 0, "sampling_step": job.steps_done if job else 0,
            "sampling_steps": job.total_steps if job else 0}


def lora_paths(studio: Studio) -> list[Path]:
    from engine.loading.catalog import list_loras
    return list_loras(studio.state.lora_dir)


def memory_report() -> dict:
    import torch
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    available = os.sysconf("SC_AVPHYS_PAGES") * page_size
    total = pages * page_size
    ram = {"free": available, "used": total - available, "total": total}
    if torch.cuda.is_available():
        free, total_cuda = torch.cuda.mem_get_info()
        cuda = {"system": {"free": free, "used": total_cuda - free, "total": total_cuda}}
    else:
        cuda = {"error": "no CUDA device"}
    return {"ram": ram, "cuda": cuda}
