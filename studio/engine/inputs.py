"""A resolved request's stored images -> the ``Inputs`` the binders hand to the pipeline.

Init image and mask are sized to the request (a mask must match its image: it was painted on
it); control maps too, after their preprocessor. IP-Adapter images and references stay as they
are (their encoders resize). ``overlay`` puts the original back outside the (blurred) mask after
inpainting, as A1111 does, so nothing outside the mask changes.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

from studio.engine.binders import Inputs
from studio.errors import InvalidRequest
from studio.requests import GenerationRequest

ASPECT_TOLERANCE = 0.02      # sizes snap to 16 px: a map within 2 % of the output's aspect is the same shape


def check_sizes(images: dict[str, Image.Image]) -> None:
    """A mask is painted on its image: the two must have the same size."""
    init, mask = images.get("init_image"), images.get("mask_image")
    if init is not None and mask is not None and init.size != mask.size:
        raise InvalidRequest("mask_image", f"the mask is {mask.size[0]}x{mask.size[1]} but the image is "
                                           f"{init.size[0]}x{init.size[1]}; paint the mask on this image")


def snapped_size(size: tuple[int, int]) -> tuple[int, int]:
    """An input's size as a request size: each side to the nearest multiple of 16, within limits."""
    from studio.requests import MAX_SIDE, MIN_SIDE

    return tuple(min(MAX_SIDE, max(MIN_SIDE, round(side / 16) * 16)) for side in size)


def aspect_notice(i: int, map_size: tuple[int, int], size: tuple[int, int]) -> str:
    """What to say when a control map of another shape is stretched to the output ("" when it fits)."""
    (w, h), (W, H) = map_size, size
    if abs((w / h) / (W / H) - 1) <= ASPECT_TOLERANCE:
        return ""
    return (f"ControlNet unit {i + 1}: its map is {w}x{h} ({w / h:.2f}:1) but the image is {W}x{H} ({W / H:.2f}:1); "
            "the map was stretched to fit, so shapes are distorted. Crop the control image to the output's aspect, "
            "or set the size to match it.")


def load(request: GenerationRequest, store, *, union: tuple[bool, ...] = (),  # noqa: ANN001
         modes: tuple[int, ...] = ()) -> Inputs:
    size = (request.width, request.height)
    init = mask = None
    if request.init_image:
        source = store.open(request.init_image, "init_image")
        init = source.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        if request.mask_image:
            painted = store.open(request.mask_image, "mask_image")
            check_sizes({"init_image": source, "mask_image": painted})
            mask = _mask(painted).resize(size, Image.Resampling.LANCZOS)
    opened = [store.open(u.map or u.image, "controls").convert("RGB") for u in request.controls]
    notices = tuple(n for n in (aspect_notice(i, m.size, size) for i, m in enumerate(opened)) if n)
    maps = tuple(m if m.size == size else m.resize(size, Image.Resampling.LANCZOS) for m in opened)
    prompts = tuple(tuple(store.open(x, "image_prompts").convert("RGB") for x in p.images)
                    for p in request.image_prompts)
    references = tuple(store.open(x, "references").convert("RGB") for x in request.references)
    return Inputs(init=init, mask=mask, control_maps=maps, union=union or (False,) * len(maps), modes=modes,
                  image_prompts=prompts, references=references, notices=notices)


def _mask(image: Image.Image) -> Image.Image:
    """White = redraw. A mask with transparency (painted on a layer) counts its opaque part."""
    if image.mode in ("RGBA", "LA"):
        return image.getchannel("A")
    return image.convert("L")


def overlay(original: Image.Image, generated: Image.Image, mask: Image.Image, blur: int) -> Image.Image:
    """The original where the blurred mask is 0, the generated image where it is 255, blended between."""
    soft = mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), soft)
