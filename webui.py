"""Start-up: parse flags, choose the device, build the app, launch. No logic of its own."""
import argparse
import sys
from pathlib import Path

from engine import Device, EngineError
from engine.devices import keep_freed_memory_for_reuse
from engine.loading.tensor_files import allow_unsafe_pickle
from engine.styles import StyleBook
from extensions import ExtensionAPI, load_extensions
from ui.api import create_api
from ui.app import CSS, build_app
from ui.model_state import ModelState
from ui.server import MAX_BODY_BYTES, ServerPolicy, lan_address, served_hosts, serve
from ui.settings import load_settings
from ui.studio import Studio

ROOT = Path(__file__).parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Stable Diffusion studio")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--listen", action="store_true", help="bind 0.0.0.0 to share on the local network")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio tunnel (needs internet)")
    parser.add_argument("--auth", help="user:password (several: comma-separated) required to open the app")
    parser.add_argument("--auth-file", type=Path, help="a file of user:password lines (or comma-separated)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--ckpt", help="checkpoint to load at start (a name in models/Stable-diffusion or a path)")
    parser.add_argument("--outdir", type=Path, default=ROOT / "outputs", help="where pictures are saved")
    parser.add_argument("--settings-file", type=Path, default=ROOT / "settings.json")
    parser.add_argument("--embeddings-dir", type=Path, default=ROOT / "embeddings",
                        help="textual inversion embeddings (A1111's embeddings/ folder)")
    parser.add_argument("--wildcards-dir", type=Path, default=ROOT / "wildcards",
                        help="wildcard files for __name__ in prompts (dynamic prompts)")
    parser.add_argument("--styles-file", type=Path, default=ROOT / "styles.csv", help="prompt styles, A1111's format")
    parser.add_argument("--annotators-dir", type=Path, help="ControlNet annotator weights (default: <models-dir>/annotators)")
    parser.add_argument("--api", action="store_true", help="serve AUTOMATIC1111's REST API (/sdapi/v1/...) too")
    parser.add_argument("--api-auth", help="user:password (several: comma-separated) required by the API "
                                           "(default: the --auth users)")
    parser.add_argument("--allow-unsafe-pickle", action="store_true",
                        help="load .ckpt/.pt files whose pickle can run code (only files you trust)")
    parser.add_argument("--allowed-hosts", default="",
                        help="more host names the server answers to (comma-separated), e.g. a name your router "
                             "gives this machine; '*' turns the check off")
    parser.add_argument("--cors-allow-origins", default="",
                        help="other web sites (comma-separated origins, e.g. http://localhost:3000) allowed to call "
                             "the app and API from a browser; none by default")
    parser.add_argument("--max-body-size", type=float, default=MAX_BODY_BYTES / 2 ** 20,
                        help="largest request body in MB (default %(default)g)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    return parser.parse_args(argv)


def credentials(auth: str | None, auth_file: Path | None) -> list[tuple[str, str]]:
    """user:password pairs from --auth and --auth-file (A1111's format: comma- or line-separated)."""
    text = auth or ""
    if auth_file is not None:
        try:
            text += "," + auth_file.read_text()
        except OSError as e:
            raise SystemExit(f"--auth-file {auth_file}: {e.strerror or e}") from e
    pairs = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise SystemExit(f"Credentials must look like user:password, not {item!r}")
        pairs.append((user, password))
    return pairs


def exposure_warnings(args: argparse.Namespace, users: list) -> list[str]:
    """What to tell a person whose app others can reach without a password."""
    if users:
        return []
    warnings = []
    if args.listen:
        warnings.append("Warning: --listen without --auth: anyone on your network can use this app"
                        + (" and its API." if args.api else "."))
    if args.share:
        warnings.append("Warning: --share without --auth: anyone with the public link can use this app"
                        + (", and the API (/sdapi/v1/...) travels through the tunnel too." if args.api else "."))
    return warnings


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv=None) -> None:
    args = parse_args(argv)
    users = credentials(args.auth, args.auth_file)
    if args.allow_unsafe_pickle:
        allow_unsafe_pickle(True)
        print("WARNING: --allow-unsafe-pickle: a .ckpt/.pt file can now run any code on this computer when "
              "loaded. Load only files you trust; prefer .safetensors.", file=sys.stderr)
    settings = load_settings(args.settings_file)
    device = Device.choose(args.device, args.precision)
    if device.device.type == "cpu":
        keep_freed_memory_for_reuse()
    state = ModelState(args.models_dir, device, args.embeddings_dir, args.wildcards_dir)
    state.vae_choice = settings.vae
    checkpoint = args.ckpt or state.default_checkpoint()
    if checkpoint:   # the page comes up at once; the model loads beside it
        try:
            state.load_in_background(Path(checkpoint) if Path(checkpoint).exists() else state.resolve(checkpoint))
        except EngineError as e:
            state.status = f"--ckpt {checkpoint}: {e}"
            print(state.status)
    print(f"Device: {state.device}")
    studio = Studio(state, settings, args.settings_file, args.outdir, styles=StyleBook(args.styles_file))
    studio.annotators = load_extensions(ExtensionAPI(args.annotators_dir or args.models_dir / "annotators"))
    for name, problem in studio.annotators.failed.items():
        print(f"Extension {name} not loaded: {problem}", file=sys.stderr)
    app = build_app(studio).queue(default_concurrency_limit=None)
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    for warning in exposure_warnings(args, users):
        print(warning, file=sys.stderr)
    policy = ServerPolicy(allowed_hosts=served_hosts(args.listen, split_list(args.allowed_hosts)),
                          cors_origins=tuple(split_list(args.cors_allow_origins)),
                          max_body_bytes=int(args.max_body_size * 2 ** 20))
    try:
        server = serve(app, host, args.port, policy, share=args.share, auth=users or None, css=CSS)
    except OSError as e:
        raise SystemExit(f"Cannot serve on {host}:{args.port}: {e}. Choose another with --port.") from e
    print(f"Running on http://127.0.0.1:{args.port}")
    if args.api:
        create_api(server, studio, credentials(args.api_auth, None) or users or None,
                   {k: v for k, v in vars(args).items() if "auth" not in k})
        print(f"API: http://127.0.0.1:{args.port}/sdapi/v1/ (docs at /docs)")
    if args.listen:
        print(f"Share on your network: http://{lan_address()}:{args.port}")
    if args.share and not app.share_url:
        print("--share: no public link could be made (no internet, or the tunnel is blocked); "
              "the app keeps running locally.", file=sys.stderr)
    app.block_thread()


if __name__ == "__main__":
    main()
