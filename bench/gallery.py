"""Gallery at scale: 100k synthetic rows in a real SQLite file.

    .venv/bin/python bench/gallery.py [--rows 100000]

Measures, on one core:
  insert_per_s    rows recorded through GalleryStore.add_many, one transaction per 100 rows (as a
                  reconcile/import pass records them), FTS triggers and LoRA rows included; the
                  rate in transactions of 4 (one generation batch each) goes to stderr
  search_ms       a two-word FTS query + total count + first page of 50 DTOs (median of 20), as
                  the Gallery tab asks it (rows whose file is missing left out)
  lora_filter_ms  LoRA filter + count + first page of 50 (median of 20), likewise
  (the database lies in bench/_work/; the placeholder files in /dev/shm when there is one, since
  creating 100k files on a busy disk takes longer than the whole benchmark may)
  open_ms         opening the store on the existing db: migration check + reconcile (a usual start:
                  folders unchanged since the last pass are not listed); the first open, which
                  lists all 100k (empty placeholder) files, goes to stderr
  import_per_s    ``import_folder`` of 10k synthetic 128x128 PNGs (--import-files), one eighth each
                  with the metadata of A1111, Fooocus (2.5 and 2.1), ComfyUI, InvokeAI, SwarmUI,
                  NovelAI and none (the fixtures' chunks, prompts varied), in 20 folders: read,
                  checked whole, hashed, read by the readers, copied and recorded (files per second,
                  into a fresh gallery; target >= 300). The rate for 512x512 PNGs goes to stderr.

Prints one line at the end:
  rows=... insert_per_s=... search_ms=... lora_filter_ms=... open_ms=... import_files=... import_per_s=...
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.gallery.browse import build_query  # noqa: E402
from studio.gallery.store import GalleryStore, NewImage  # noqa: E402
from studio.requests import LoraSpec  # noqa: E402

WORDS = ("portrait landscape city forest river mountain castle dragon robot cat dog fox owl girl boy woman man "
         "knight wizard ship car train street night sunset sunrise rain snow fog neon cyberpunk steampunk "
         "watercolor oil painting photo cinematic lighting detailed sharp soft bokeh dramatic golden hour "
         "red blue green yellow purple orange black white silver gold glass stone wood metal ancient futuristic "
         "cozy dark bright misty stormy calm underwater space nebula galaxy flower garden market cafe library "
         "temple bridge tower lighthouse desert ocean beach island volcano cave waterfall meadow village").split()
NEGATIVE = ["", "blurry", "lowres, bad anatomy", "watermark, text", "jpeg artifacts, worst quality"]
LORAS = [f"lora_{i:02d}" for i in range(40)]
MODELS = ["flux-schnell", "flux-dev", "sdxl", "sd15", "juggernaut-xl", "dreamshaper-8"]
BATCH = 100
SIZES = [(1024, 1024), (832, 1216), (1216, 832), (512, 512), (512, 768), (768, 512)]


def synthetic(n: int, outputs: Path, rng: random.Random) -> list[NewImage]:
    start = datetime(2025, 1, 1)
    weights = [1 / (i + 1) for i in range(len(WORDS))]          # Zipf-like: a few words are common
    out = []
    for i in range(n):
        w, h = rng.choice(SIZES)
        loras = tuple(LoraSpec(name, round(rng.uniform(0.2, 1.0), 2))
                      for name in rng.sample(LORAS, rng.choice((0, 0, 1, 1, 2))))
        day = start + timedelta(minutes=i * 5)
        out.append(NewImage(path=outputs / "txt2img" / day.strftime("%Y-%m-%d") / f"{i:06d}-{i}.png",
                            sha256=f"{i:064x}", task=rng.choice(("txt2img", "txt2img", "txt2img", "img2img")),
                            model_id=rng.choice(MODELS), prompt=" ".join(rng.choices(WORDS, weights, k=14)),
                            negative_prompt=rng.choice(NEGATIVE), seed=rng.randrange(2**32), width=w, height=h,
                            steps=rng.choice((4, 20, 28, 30)), guidance=rng.choice((0.0, 3.5, 7.0)),
                            scheduler="Euler", loras=loras, infotext="", request_json="{}", created_at=day,
                            timings=(("generate", 1.0),)))
    return out


FIXTURES = ROOT / "tests" / "gallery" / "fixtures"
IMPORT_KINDS = ("a1111_sd_parsers", "fooocus_2_5_scheme_fooocus", "fooocus_2_1_legacy", "comfyui_flux_custom_sampler",
                "invokeai_5_sdxl", "swarmui_loras", "novelai_v4_5", None)
PROMPTS = {"a1111_sd_parsers": "photo of a duck", "fooocus_2_5_scheme_fooocus": "a red fox in the snow",
           "fooocus_2_1_legacy": "a lighthouse on a cliff at dusk",
           "comfyui_flux_custom_sampler": "a tiny astronaut hatching from an egg on the moon",
           "invokeai_5_sdxl": "a watercolor harbour at dawn, soft light",
           "swarmui_loras": "solo, portrait of a knight, realistic lighting",
           "novelai_v4_5": "1girl, silver hair, night city, rain, neon, very aesthetic, masterpiece, no text"}


def synthetic_pngs(folder: Path, n: int, side: int, rng: random.Random) -> None:
    """``n`` PNGs, each with one tool's metadata (or none), a prompt of its own and its own pixels."""
    import json

    import numpy as np
    from PIL import Image, PngImagePlugin

    templates = {k: json.loads((FIXTURES / f"{k}.json").read_text(encoding="utf-8"))["chunks"]
                 for k in IMPORT_KINDS if k}
    ramp = np.linspace(0, 1, side, dtype=np.float32)
    for i in range(n):
        kind = IMPORT_KINDS[i % len(IMPORT_KINDS)]
        info = PngImagePlugin.PngInfo()
        if kind:
            prompt = " ".join(rng.choices(WORDS, k=10))
            for key, value in templates[kind].items():
                value = value.replace(PROMPTS[kind], prompt)
                info.add_text(key, value) if value.isascii() else info.add_itxt(key, value)
        a, b, c = (rng.random() for _ in range(3))
        pixels = np.stack([ramp[None, :] * a + ramp[:, None] * (1 - a), np.full((side, side), b, np.float32),
                           np.broadcast_to((ramp[:, None] * c) % 1, (side, side))], axis=-1)
        pixels = (pixels * 255).astype(np.uint8)
        pixels[i % side, : i % side + 1, 0] ^= 0xFF                  # every file's content its own
        path = folder / f"day-{i % 20:02d}" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, pnginfo=info, compress_level=1)


def import_rate(work: Path, n: int, side: int, rng: random.Random) -> float:
    """Files per second of ``import_folder`` over ``n`` synthetic PNGs into a fresh gallery."""
    from studio.gallery.import_folder import import_folder

    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="gallery-import-", dir=shm if shm.is_dir() else work))
    try:
        synthetic_pngs(base / "from-other-tools", n, side, rng)
        with GalleryStore(base / "outputs", work / f"import-{side}.db") as store:
            report = import_folder(store, base / "from-other-tools")
        assert report.imported == n and not report.failed, report.summary()
        print(f"# import {side}x{side}: {report.summary().splitlines()[0]}", file=sys.stderr)
        return report.imported / report.seconds
    finally:
        shutil.rmtree(base, ignore_errors=True)


def median_ms(fn, repeat: int = 20) -> float:
    fn()                                                           # warm the page cache once
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "gallery")
    parser.add_argument("--import-files", type=int, default=10_000)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    db_path = args.work / "gallery.db"          # on disk, as usual
    shm = Path("/dev/shm")                      # 100k placeholder files: creating them on a busy disk
    outputs = Path(tempfile.mkdtemp(prefix="gallery-bench-", dir=shm if shm.is_dir() else args.work)) / "outputs"
    outputs.mkdir(parents=True)                 # takes minutes, in RAM a few seconds
    rng = random.Random(0)
    t0 = time.perf_counter()
    images = synthetic(args.rows, outputs, rng)
    print(f"# synthetic rows: {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    store = GalleryStore(outputs, db_path, reconcile=False)
    small = min(len(images), 4000)
    t = time.perf_counter()
    for i in range(0, small, 4):                 # as the sink records generation batches of 4
        store.add_many(images[i:i + 4])
    batch4_per_s = small / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(small, len(images), BATCH):   # as reconcile / import record many files
        store.add_many(images[i:i + BATCH])
    insert_per_s = (len(images) - small) / max(1e-9, time.perf_counter() - t)
    assert store.count() == args.rows
    print(f"# insert: {batch4_per_s:.0f} rows/s in transactions of 4, {insert_per_s:.0f} rows/s in transactions "
          f"of {BATCH}", file=sys.stderr)

    words = build_query("castle sunset", per_page=50)        # as the Gallery tab asks (hides missing files)
    lora = build_query(lora="lora_07", per_page=50)
    search_ms = median_ms(lambda: store.search(words))
    lora_ms = median_ms(lambda: store.search(lora))
    print(f"# search 'castle sunset': {store.search(words).total} hits; lora_07: {store.search(lora).total} hits",
          file=sys.stderr)
    store.close()
    t_files = time.perf_counter()
    for image in images:                        # empty placeholder files for reconcile to walk
        if not image.path.parent.is_dir():
            image.path.parent.mkdir(parents=True)
        os.close(os.open(image.path, os.O_CREAT | os.O_WRONLY, 0o644))
    past = time.time() - 86400                  # as after a day: folders quiet since their last write
    for folder in [p for p in outputs.rglob("*") if p.is_dir()] + [outputs]:
        os.utime(folder, (past, past))

    print(f"# placeholder files: {time.perf_counter() - t_files:.1f} s", file=sys.stderr)
    t = time.perf_counter()                     # first open after the rows came: every folder listed
    first = GalleryStore(outputs, db_path)
    first_ms = (time.perf_counter() - t) * 1000
    assert first.last_reconcile.flagged_missing == 0 and first.last_reconcile.imported == 0, first.last_reconcile
    first.close()

    os.utime(outputs)                           # as gallery.db's -wal/-shm files do when the db lies there
    t = time.perf_counter()                     # a usual start
    reopened = GalleryStore(outputs, db_path)
    open_ms = (time.perf_counter() - t) * 1000
    report = reopened.last_reconcile
    assert report.flagged_missing == 0 and report.imported == 0, report
    probe = reopened
    print(f"# open: {first_ms:.0f} ms listing all {first.last_reconcile.folders_listed} folders, then {open_ms:.0f} ms "
          f"with {report.folders_listed} changed", file=sys.stderr)
    print(f"# search + page DTOs, 'castle sunset' again: {median_ms(lambda: probe.search(words)):.1f} ms",
          file=sys.stderr)
    probe.close()
    shutil.rmtree(outputs.parent, ignore_errors=True)
    import_per_s = import_rate(args.work, args.import_files, 128, rng)
    large_per_s = import_rate(args.work, max(1, args.import_files // 20), 512, rng)
    print(f"# import of 512x512 PNGs: {large_per_s:.0f} files/s", file=sys.stderr)
    print(f"rows={args.rows} insert_per_s={insert_per_s:.0f} search_ms={search_ms:.1f} "
          f"lora_filter_ms={lora_ms:.1f} open_ms={open_ms:.0f} import_files={args.import_files} "
          f"import_per_s={import_per_s:.0f}")


if __name__ == "__main__":
    main()
