"""Readers of generation metadata: one per tool, each a small pure function, tried in order.

    read(chunks, size) -> (Reading | None, problems)

``chunks`` are an image's text chunks by name (PNG tEXt/zTXt/iTXt; for JPEG/WebP the EXIF
UserComment as ``parameters`` and Fooocus's MakerNote as ``fooocus_scheme``), ``size`` the image's
(width, height). Each reader in ``READERS`` looks for its own chunks and returns a ``Reading`` (the
request fields it understood, the source's own parameters with every key kept, model and LoRA
hashes) or None when the image is not its tool's. A reader that finds its tool's chunk but the
content is of the wrong shape raises ``Unreadable`` saying what is wrong; the next readers are still
tried, and when none reads the image the reasons come back as ``problems``. An image no reader
understands is "no parameters", never an error.

Order matters: the studio's own exact request first; then the ``parameters`` chunk, whose
JSON-speaking tools (Fooocus, SwarmUI) come before A1111's text; then the tools with chunks of their
own (ComfyUI, InvokeAI, NovelAI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Size = tuple[int, int]


class Unreadable(Exception):  # noqa: N818 - a reading outcome, said to the user as it is
    """The chunk is this tool's, but its content cannot be read (the message says why)."""


@dataclass(frozen=True, slots=True)
class Reading:
    source: str                                   # studio | a1111 | fooocus | comfyui | invokeai | swarmui | novelai
    fields: dict[str, Any]                        # GenerationRequest keyword arguments, what is known
    parameters: dict[str, Any]                    # the source's own, as it names them, every key kept
    infotext: str = ""                            # the text to show and copy (A1111 text, or the JSON as written)
    model_hash: str = ""                          # the model's file as the source names it by hash
    lora_hashes: tuple[tuple[str, str], ...] = ()  # (LoRA name, hash)
    notes: tuple[str, ...] = ()                   # values read but left out, and why


Reader = Callable[[dict[str, str], Size], "Reading | None"]


SOURCES = ("studio", "a1111", "fooocus", "comfyui", "invokeai", "swarmui", "novelai")
NAMES = {"studio": "this studio", "a1111": "A1111 / Forge", "fooocus": "Fooocus", "comfyui": "ComfyUI",
         "invokeai": "InvokeAI", "swarmui": "SwarmUI", "novelai": "NovelAI", "none": "no generation parameters",
         "import": "no generation parameters"}


def read(chunks: dict[str, str], size: Size = (0, 0)) -> tuple[Reading | None, tuple[str, ...]]:
    """The first reading any reader makes of ``chunks`` (with, as notes, why readers before it that knew
    a chunk could not read it), or None and those reasons."""
    problems: list[str] = []
    for _name, reader in READERS:
        try:
            found = reader(chunks, size)
        except Unreadable as err:
            problems.append(str(err))
            continue
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:   # a reader's blind spot:
            problems.append(f"{_name} metadata could not be read ({type(err).__name__}: {err})")  # never an error
            continue
        if found is not None:            # what an earlier reader could not read is still said
            return (with_notes(found, problems) if problems else found), ()
    return None, tuple(problems)


def with_notes(reading: Reading, notes: list[str]) -> Reading:
    """``reading`` with ``notes`` added."""
    return Reading(reading.source, reading.fields, reading.parameters, reading.infotext, reading.model_hash,
                   reading.lora_hashes, (*reading.notes, *notes))


# the table, in order (imported last: each reader module imports Reading and Unreadable from here)
from studio.gallery.readers import a1111, comfyui, fooocus, invokeai, novelai, studio, swarmui  # noqa: E402

READERS: tuple[tuple[str, Reader], ...] = (
    ("studio", studio.read), ("fooocus", fooocus.read), ("swarmui", swarmui.read), ("a1111", a1111.read),
    ("comfyui", comfyui.read), ("invokeai", invokeai.read), ("novelai", novelai.read))

__all__ = ["NAMES", "READERS", "SOURCES", "Reading", "Unreadable", "read", "with_notes"]
