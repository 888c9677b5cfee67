"""Start-up: parse flags, choose the device, build the app, launch. No logic of its own."""
import argparse
from pathlib import Path

from engine import Device, EngineError
from ui.app import build_app
from ui.model_state import ModelState


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Stable Diffusion studio")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--listen", action="store_true", help="bind 0.0.0.0 to share on the local network")
    parser.add_argument("--models-dir", type=Path, default=Path(__file__).parent / "models")
    parser.add_argument("--ckpt", help="checkpoint to load at start (a name in models/Stable-diffusion or a path)")
    parser.add_argument("--outdir", type=Path, default=Path(__file__).parent / "outputs", help="where pictures are saved")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    state = ModelState(args.models_dir, Device.choose(args.device, args.precision))
    checkpoint = args.ckpt or state.default_checkpoint()
    if checkpoint:   # the page comes up at once; the model loads beside it
        try:
            state.load_in_background(Path(checkpoint) if Path(checkpoint).exists() else state.resolve(checkpoint))
        except EngineError as e:
            state.status = f"--ckpt {checkpoint}: {e}"
            print(state.status)
    print(f"Device: {state.device}")
    build_app(state, args.outdir).launch(server_name="0.0.0.0" if args.listen else "127.0.0.1", server_port=args.port)


if __name__ == "__main__":
    main()
