"""Settings: one frozen object built from CLI flags and their environment twins.

Every flag has an environment equivalent (``STUDIO_<FLAG>``), in the A1111 habit of
``COMMANDLINE_ARGS``: ``--port 7861`` == ``STUDIO_PORT=7861``. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from studio.errors import InvalidRequest

ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("auto", "cuda", "cpu", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")
PLACEMENTS = ("auto", "gpu", "model_offload", "sequential_offload", "group_offload")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[tuple[str, str], ...] = ()
    models_dir: Path = ROOT / "models"     # the user's models; the demo model ships in ROOT/models/demo
    outputs_dir: Path = ROOT / "outputs"
    cache_dir: Path = ROOT / ".cache"      # what the studio builds for itself (tiny-random), gitignored
    device: str = "auto"
    dtype: str = "auto"
    offline: bool = False
    default_model: str = ""            # "" = the catalog's default (the embedded demo model)
    concurrency: int = 1               # generations at once (one GPU queue)
    placement: str = "auto"
    cpu_budget_gb: float | None = None  # RAM for cached models; None = half of physical RAM
    gpu_reserve_gb: float = 1.0
    quantize: str = "none"             # none | nf4 (CUDA only)
    insecure_share: bool = False       # --share without --auth, knowingly
    compile: bool = False              # torch.compile the denoiser's repeated blocks (cache in cache_dir)
    allow_import_paths: bool = False   # Gallery "Import a folder" / /gallery_import on a public server
    # public mode (studio/public.py): per-visitor galleries, no Models tab, limits, a fair queue.
    # On by default on a Space (SPACE_ID) without --auth (settings_from)
    public: bool = False
    max_size: int = 1024               # public mode: width and height, pixels
    max_steps: int = 50                # public mode: steps per image
    max_images: int = 4                # public mode: batch count x batch size per request
    max_queue: int = 2                 # public mode: generations waiting or running per visitor
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise InvalidRequest("device", f"must be one of {DEVICES}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise InvalidRequest("dtype", f"must be one of {DTYPES}, got {self.dtype!r}")
        if self.placement not in PLACEMENTS:
            raise InvalidRequest("placement", f"must be one of {PLACEMENTS}, got {self.placement!r}")
        if not 1 <= self.port <= 65535:
            raise InvalidRequest("port", f"must be within 1..65535, got {self.port}")
        if self.concurrency < 1:
            raise InvalidRequest("concurrency", f"must be at least 1, got {self.concurrency}")
        for name in ("max_size", "max_steps", "max_images", "max_queue"):
            if getattr(self, name) < 1:
                raise InvalidRequest(name, f"must be at least 1, got {getattr(self, name)}")
        if self.quantize not in ("none", "nf4"):
            raise InvalidRequest("quantize", f"must be none or nf4, got {self.quantize!r}")
        object.__setattr__(self, "models_dir", Path(self.models_dir))
        object.__setattr__(self, "outputs_dir", Path(self.outputs_dir))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    def replace(self, **changes: object) -> Settings:
        return replace(self, **changes)

    @property
    def imports_allowed(self) -> bool:
        """Whether importing a folder by its path on this machine is offered: yes when only this
        machine can reach the studio (no --share, a loopback --host), or with --allow-import-paths.
        Never in public mode: a visitor names no paths on the server."""
        from studio.startup import is_loopback

        if self.public:
            return False
        return self.allow_import_paths or (not self.share and is_loopback(self.host))

    @property
    def limits(self):  # noqa: ANN201 - studio.public.Limits (imported here only when asked)
        from studio.public import Limits

        return Limits(self.max_size, self.max_steps, self.max_images, self.max_queue)


def _parse_auth(value: str | None) -> tuple[tuple[str, str], ...]:
    """``user:pass``, several separated by commas, or the path of a file with one per line."""
    if not value:
        return ()
    path = Path(value).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    elif ":" in value:
        text = value
    else:
        raise InvalidRequest("auth", f"expected user:pass or the path of a file of them, got {value!r} "
                                     "(no such file, no colon)")
    pairs = []
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise InvalidRequest("auth", f"expected user:pass, got {item!r}")
        pairs.append((user, password))
    return tuple(pairs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="Image-generation studio (FLUX and Stable Diffusion).",
                                epilog="Every flag has an environment twin: STUDIO_<FLAG>, e.g. STUDIO_PORT=7861.")
    p.add_argument("--listen", action="store_true", help="serve on 0.0.0.0 (all interfaces) instead of 127.0.0.1")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="make a public gradio share link")
    p.add_argument("--auth", help="user:pass[,user2:pass2] or a file with one user:pass per line")
    p.add_argument("--models-dir", help="the models folder (checkpoints/, loras/, controlnet/, ip_adapter/)")
    p.add_argument("--outputs-dir", help="where images (and the gallery) are written")
    p.add_argument("--cache-dir", help="where the studio keeps what it builds itself (default ./.cache)")
    p.add_argument("--device", choices=DEVICES, help="auto picks cuda, then mps, then cpu")
    p.add_argument("--dtype", choices=DTYPES, help="auto: bfloat16 on cuda (float16 if unsupported), float32 on cpu")
    p.add_argument("--offline", action="store_true", help="never contact the Hugging Face hub; use the local cache only")
    p.add_argument("--default-model", help="model id selected at start (see the Models tab)")
    p.add_argument("--concurrency", type=int, help="generations at once (default 1: one GPU queue)")
    p.add_argument("--placement", choices=PLACEMENTS, help="force where model weights live (default auto)")
    p.add_argument("--cpu-budget-gb", type=float, help="RAM for cached models (default half of RAM)")
    p.add_argument("--gpu-reserve-gb", type=float, help="VRAM kept free for activations (default 1)")
    p.add_argument("--quantize", choices=("none", "nf4"), help="nf4: 4-bit FLUX transformer and T5 (CUDA only)")
    p.add_argument("--insecure-share", action="store_true",
                   help="allow --share without --auth: anyone with the link can use the studio and its gallery")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the denoiser's repeated blocks: slow first call, faster after (GPU)")
    p.add_argument("--allow-import-paths", action="store_true",
                   help="offer the Gallery's 'Import a folder' (a path on this machine) with --listen/--share too")
    p.add_argument("--public", action="store_true",
                   help="public mode: each visitor sees only its own images; no Models tab, no paths; limits and "
                        "a fair queue (default on a Space without --auth; STUDIO_PUBLIC=0 turns it off)")
    p.add_argument("--max-size", type=int, help="public mode: largest width and height (default 1024)")
    p.add_argument("--max-steps", type=int, help="public mode: most steps per image (default 50)")
    p.add_argument("--max-images", type=int, help="public mode: most images per request, batch count x size (default 4)")
    p.add_argument("--max-queue", type=int, help="public mode: generations waiting or running per visitor (default 2)")
    return p


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False, "": False}


def settings_from(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    args = build_parser().parse_args(list(argv or []))

    def pick(name: str, kind: type = str):  # flag, else STUDIO_<NAME>, else None
        value = getattr(args, name)
        if value is not None and value is not False:     # 0 is a value (``0 in (None, False)`` is true)
            return value
        raw = env.get("STUDIO_" + name.upper())
        if raw is None or (kind is not bool and not raw.strip()):   # STUDIO_PORT= means "not set"
            return None
        if kind is bool:
            if raw.strip().lower() not in _BOOL:
                raise InvalidRequest(name, f"STUDIO_{name.upper()} must be 1/0/true/false, got {raw!r}")
            return _BOOL[raw.strip().lower()]
        try:
            return kind(raw)
        except ValueError:
            raise InvalidRequest(name, f"STUDIO_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None

    values: dict[str, object] = {}
    host = pick("host")
    if pick("listen", bool):
        host = host or "0.0.0.0"
    if host:
        values["host"] = host
    for name, kind in (("port", int), ("concurrency", int), ("cpu_budget_gb", float), ("gpu_reserve_gb", float),
                       ("max_size", int), ("max_steps", int), ("max_images", int), ("max_queue", int)):
        value = pick(name, kind)
        if value is not None:
            values[name] = value
    for name in ("models_dir", "outputs_dir", "cache_dir"):
        value = pick(name)
        if value:
            values[name] = Path(value).expanduser().resolve()
    if "models_dir" in values and not values["models_dir"].is_dir():   # a typo must not hide the user's models
        raise InvalidRequest("models_dir", f"--models-dir {values['models_dir']} does not exist or is not a folder. "
                                           "Point --models-dir (STUDIO_MODELS_DIR) at your models folder, or create "
                                           "it (checkpoints/, loras/, controlnet/ inside).")
    for name in ("device", "dtype", "default_model", "placement", "quantize"):
        value = pick(name)
        if value:
            values[name] = value
    for name in ("share", "offline", "compile", "insecure_share", "allow_import_paths"):
        value = pick(name, bool)
        if value is not None:
            values[name] = value
    if not values.get("offline") and env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        values["offline"] = True
    auth = pick("auth")
    if auth:
        values["auth"] = _parse_auth(auth)
    public = pick("public", bool)          # not given: on for a Space anyone can open (no --auth)
    values["public"] = public if public is not None else bool(env.get("SPACE_ID")) and not values.get("auth")
    return Settings(**values)
