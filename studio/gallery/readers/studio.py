"""This studio's own ``studio`` chunk: the exact resolved request as JSON (``GenerationRequest.to_json``)."""

from __future__ import annotations

import json

from studio.errors import StudioError
from studio.gallery.readers import Reading, Size, Unreadable
from studio.gallery.readers.a1111 import hashes_of
from studio.gallery.infotext import parse_infotext
from studio.requests import GenerationRequest


def read(chunks: dict[str, str], size: Size) -> Reading | None:
    raw = chunks.get("studio")
    if not raw:
        return None
    try:
        request = GenerationRequest.from_json(raw)
    except json.JSONDecodeError as err:
        raise Unreadable(f"the 'studio' chunk is not JSON ({err.msg} at character {err.pos})") from None
    except (StudioError, TypeError, ValueError, AttributeError) as err:
        raise Unreadable(f"the 'studio' chunk is not a request this studio reads ({err})") from None
    text = chunks.get("parameters", "")
    model_hash, lora_hashes = hashes_of(parse_infotext(text)) if text else ("", ())
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    return Reading("studio", fields, request.to_dict(), text, model_hash, lora_hashes)
