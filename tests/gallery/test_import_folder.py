"""Importing a folder from other tools: every file read once, recorded with its source, duplicates
skipped, bad files named while the rest continues, nothing half-imported, resumable, cancellable."""

from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.errors import InvalidRequest
from studio.gallery import import_folder as importing
from studio.gallery.import_folder import import_folder, main

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = {"a1111_sd_parsers": "a1111", "fooocus_2_5_scheme_fooocus": "fooocus", "fooocus_2_1_legacy": "fooocus",
           "comfyui_flux_custom_sampler": "comfyui", "invokeai_5_sdxl": "invokeai", "swarmui_loras": "swarmui",
           "novelai_v4_5": "novelai"}


def png(path: Path, chunks: dict[str, str], colour=(40, 60, 80), size=(64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value) if value.isascii() else info.add_itxt(key, value)
    Image.new("RGB", size, colour).save(path, pnginfo=info)
    return path


def fixture_chunks(name: str) -> dict[str, str]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["chunks"]


@pytest.fixture
def folder(tmp_path) -> Path:
    """A Downloads-like folder: one image per tool, in sub-folders, and a plain picture."""
    root = tmp_path / "old-images"
    for i, name in enumerate(SOURCES):
        png(root / ("2024-05-0" + str(i % 3)) / f"{name}.png", fixture_chunks(name), colour=(i * 20, 0, 0))
    png(root / "plain.png", {}, colour=(1, 2, 3))
    return root


def rows_and_files_agree(store) -> None:
    records = store.search(per_page=1000).items
    imported = {p for p in (store.outputs_dir / "imported").rglob("*") if p.is_file()}
    assert {Path(r.path) for r in records} == imported
    assert not [p for p in store.outputs_dir.rglob(".tmp-*")]


def test_every_tool_comes_in_with_its_source_and_is_searchable(store, folder):
    report = import_folder(store, folder)
    assert (report.found, report.imported, report.duplicates, report.plain, report.failed) == (8, 8, 0, 1, ())
    assert dict(report.sources) == {"a1111": 1, "fooocus": 2, "comfyui": 1, "invokeai": 1, "swarmui": 1,
                                    "novelai": 1, "import": 1}
    rows_and_files_agree(store)
    assert store.search(text="source:fooocus").total == 2 and store.search(source="novelai").total == 1
    fox = store.search(text="red fox").items[0]
    assert (fox.source, fox.seed, fox.model_id, fox.model_revision) == ("fooocus", 2**63 - 1,
                                                                        "juggernautXL_v8Rundiffusion", "aeb7e9e689")
    assert dict(fox.lora_hashes)["SDXL_FILM_PHOTOGRAPHY_STYLE_V1"] == "f2a4b1b2e3"
    assert fox.request is not None and fox.request.seed == 2**63 - 1          # re-generatable as it stands
    flux = store.search(source="comfyui").items[0]
    assert flux.seed == 2**64 - 2 and flux.path.endswith("imported/old-images/2024-05-00/comfyui_flux_custom_sampler.png")
    assert store.search(lora="more_details").total == 1 and store.search(text="seed:917009594").total == 1
    made = os.stat(folder / "2024-05-01" / "fooocus_2_5_scheme_fooocus.png").st_mtime
    assert abs(store.search(text="red fox").items[0].created_at.timestamp() - made) < 1     # when it was made


def test_running_it_again_skips_everything_by_content(store, folder):
    import_folder(store, folder)
    copy = folder / "again" / "same-as-plain.png"
    copy.parent.mkdir()
    copy.write_bytes((folder / "plain.png").read_bytes())
    again = import_folder(store, folder)
    assert (again.imported, again.duplicates) == (0, 9) and store.count() == 8


def test_link_instead_of_copy_and_opting_out_of_plain_images(store, folder):
    report = import_folder(store, folder, link=True, plain=False)
    assert (report.imported, report.skipped_plain) == (7, 1)
    record = store.search(text="red fox").items[0]
    original = folder / "2024-05-01" / "fooocus_2_5_scheme_fooocus.png"
    assert os.path.samefile(record.path, original) and os.stat(original).st_nlink == 2


def _bad_files(root: Path) -> dict[str, str]:
    """Each kind of bad input, and what its message says."""
    good = png(root / "good.png", fixture_chunks("a1111_sd_parsers"))
    data = good.read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])
    (root / "corrupt.png").write_bytes(data[:60] + bytes([data[60] ^ 0xFF]) + data[61:])
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    (root / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
                                    + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    png(root / "huge-text.png", {"parameters": "a" * 10_000_000})
    png(root / "wrong-shape.png", {"parameters": json.dumps({"sui_image_params": [1, 2]})})
    (root / "notes.png").write_text("not a picture")
    (root / "loop").symlink_to(root)
    (root / "dangling.png").symlink_to(root / "nowhere.png")
    return {"cut.png": "truncated or damaged PNG", "corrupt.png": "fails its checksum",
            "bomb.png": "30000x30000, over the 64-megapixel limit", "huge-text.png": "text chunk 'parameters' of 10.0 MB",
            "notes.png": "is not an image", "loop": "a loop", "dangling.png": "a link to a file that is not there"}


def test_bad_input_is_named_the_rest_continues_and_nothing_is_half_imported(store, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    expected = _bad_files(root)
    report = import_folder(store, root)
    failed = dict(report.failed)
    assert set(failed) == set(expected), failed
    for name, why in expected.items():
        assert why in failed[name], (name, failed[name])
    assert report.imported == 2 and store.search(source="a1111").total == 1          # good.png
    shaped = store.search(text="", source="import").items                            # wrong-shape.png, plain
    assert [Path(r.path).name for r in shaped] == ["wrong-shape.png"]
    assert any(n == "wrong-shape.png" and "sui_image_params" in why for n, why in report.notes)
    rows_and_files_agree(store)


def test_a_file_that_vanishes_during_the_import_is_named(store, folder, monkeypatch):
    monkeypatch.setattr(importing, "PROGRESS_EVERY", 0)
    victim = sorted(folder.rglob("*.png"))[-1]

    def vanish(progress):
        if progress.done == 1 and victim.exists():
            victim.unlink()

    report = import_folder(store, folder, on_progress=vanish)
    assert [why for name, why in report.failed] == [f"{victim.relative_to(folder).as_posix()!r} is not there any "
                                                    "more (moved or deleted during the import)"]
    assert report.imported == 7
    rows_and_files_agree(store)


def test_cancel_keeps_what_is_in_whole_and_the_next_run_resumes(store, folder, monkeypatch):
    monkeypatch.setattr(importing, "BATCH", 2)
    monkeypatch.setattr(importing, "PROGRESS_EVERY", 0)
    cancel = threading.Event()
    seen = []

    def stop_after_three(progress):
        seen.append(progress)
        if progress.done == 3:
            cancel.set()

    first = import_folder(store, folder, cancel=cancel, on_progress=stop_after_three)
    assert first.cancelled and first.imported == 3 and store.count() == 3
    rows_and_files_agree(store)
    assert seen[-1].files_per_s > 0 and seen[-1].eta is not None and "files/s" in seen[-1].line()
    rest = import_folder(store, folder)
    assert (rest.imported, rest.duplicates, rest.cancelled) == (5, 3, False) and store.count() == 8


def test_a_failed_transaction_leaves_no_file_and_no_row(store, folder, monkeypatch):
    def broken(images, **kw):
        raise OSError("disk I/O error")

    monkeypatch.setattr(store, "add_many", broken)
    with pytest.raises(OSError):
        import_folder(store, folder)
    monkeypatch.undo()
    assert store.count() == 0 and not [p for p in (store.outputs_dir / "imported").rglob("*") if p.is_file()]


def test_the_folder_itself_must_be_a_folder_outside_outputs(store, outputs, tmp_path):
    for folder, why in ((tmp_path / "nope", "does not exist"), (outputs, "inside the gallery's outputs folder")):
        with pytest.raises(InvalidRequest, match=why):
            import_folder(store, folder)


def test_the_command_line(folder, tmp_path, capsys):
    outputs = tmp_path / "cli-outputs"
    assert main([str(folder), "--outputs-dir", str(outputs), "--skip-plain", "--tag", "old"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("7 of 8 imported (a1111 1, comfyui 1, fooocus 2, invokeai 1, novelai 1, swarmui 1)")
    assert "files/s" in out.err and "ETA" in out.err
    from studio.gallery.store import GalleryStore

    with GalleryStore(outputs) as store:
        assert store.count() == 7 and store.search(text="tag:old").total == 7
    assert main([str(tmp_path / "missing"), "--outputs-dir", str(outputs)]) == 2
    assert "does not exist" in capsys.readouterr().err
