"""A resolved request's stored images -> the ``Inputs`` the binders hand to the pipeline, and the
pure PIL steps of img2img and inpaint around the pipeline call (A1111's, where it has one).

- ``resize``: the init image (and its mask) to the request's size by ``resize_mode``: just resize,
  crop and resize (cover, centre crop), resize and fill (fit, edges stretched into the bands).
- ``size_for``: the request's size from the init image when none is given (times ``scale_by``,
  each side to the nearest multiple of 16).
- ``check_images``: what can be told before anything is written (a 1-px image, a mask of another
  shape, an empty mask, a size over the cap), each an ``InvalidRequest`` naming the field.
- ``mask_of`` / ``effective_mask``: white = redraw; "inpaint not masked" inverts.
- ``crop_box`` / ``cropped`` / ``finish_inpaint``: "only masked" crops around the mask (plus
  padding, grown to the working size's aspect), generates at the working size and pastes back;
  then the original is put back outside the mask (``overlay``), so no pixel outside it changes.
- ``outpaint_canvas``: the padded canvas (edge colours or a blurred stretch) and its mask.

Control maps are sized to the request too; IP-Adapter images and references stay as they are
(their encoders resize).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps

from studio.engine.binders import Inputs
from studio.errors import InvalidRequest
from studio.requests import LIMITS, MAX_SIDE, MIN_SIDE, GenerationRequest

MIN_INPUT_SIDE = 16                  # an init image or mask smaller than this a side is refused
EMPTY_MASK_LEVEL = 8                 # a mask with no pixel brighter than this redraws nothing
OUTPAINT_FILLS = {"edge": "Edge colours", "blur": "Blurred stretch"}
LANCZOS = Image.Resampling.LANCZOS

ASPECT_TOLERANCE = 0.02      # sizes snap to 16 px: a map within 2 % of the output's aspect is the same shape


# -- sizes ------------------------------------------------------------------------------------------
def size_for(size: tuple[int, int], scale: float = 1.0, *, field: str = "init_image") -> tuple[int, int]:
    """The request size made from an init image of ``size`` times ``scale``: each side to the nearest
    multiple of 16, halves up (at least 16). Over ``MAX_SIDE`` is refused, never squeezed: the aspect would change."""
    width, height = (max(MIN_SIDE, int(side * scale / 16 + 0.5) * 16) for side in size)   # halves up
    if max(width, height) > MAX_SIDE:
        how = f" times scale_by {scale:g}" if scale != 1 else ""
        raise InvalidRequest(field, f"the image is {size[0]}x{size[1]}{how}: {width}x{height} is over the "
                                    f"{MAX_SIDE} px limit a side; lower scale_by or give width and height")
    return width, height


def resize(image: Image.Image, size: tuple[int, int], mode: str = "just_resize") -> Image.Image:
    """``image`` at ``size`` by A1111's resize modes (``RESIZE_MODES``)."""
    width, height = size
    if image.size == (width, height):
        return image.copy()
    if mode == "just_resize":
        return image.resize((width, height), LANCZOS)
    ratio, src_ratio = width / height, image.width / image.height
    cover = mode == "crop_and_resize"
    wide = (ratio > src_ratio) == cover               # fit the width (else the height)
    src_w = width if wide else max(1, round(image.width * height / image.height))
    src_h = max(1, round(image.height * width / image.width)) if wide else height
    scaled = image.resize((src_w, src_h), LANCZOS)
    left, top = (width - src_w) // 2, (height - src_h) // 2
    if cover:
        return scaled.crop((-left, -top, -left + width, -top + height))
    data = np.asarray(scaled)
    pad = ((top, height - src_h - top), (left, width - src_w - left)) + ((0, 0),) * (data.ndim - 2)
    return Image.fromarray(np.pad(data, pad, mode="edge"), scaled.mode)


# -- masks ------------------------------------------------------------------------------------------
def mask_of(image: Image.Image) -> Image.Image:
    """White = redraw. A layer painted on transparency (some alpha below 255) counts its opaque
    part; an opaque image (a mask file) its brightness."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:
            return alpha
    return image.convert("L")


def effective_mask(mask: Image.Image, mode: str) -> Image.Image:
    """The part to redraw: the mask, or with "inpaint not masked" everything else."""
    return ImageOps.invert(mask) if mode == "not_masked" else mask


def _same_shape(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Same aspect ratio, up to one pixel of rounding on the shorter image."""
    return abs(a[0] * b[1] - a[1] * b[0]) <= max(a[0], a[1], b[0], b[1])


def check_images(request: GenerationRequest, images: dict[str, Image.Image]) -> tuple[int, int] | None:
    """Refuse what can be told before anything is written; returns the size from the init image
    (``size_for``) when the request gives none."""
    init, mask = images.get("init_image"), images.get("mask_image")
    for name, image in (("init_image", init), ("mask_image", mask)):
        if image is not None and min(image.size) < MIN_INPUT_SIDE:
            raise InvalidRequest(name, f"the image is {image.width}x{image.height} pixels; img2img and inpaint need "
                                       f"at least {MIN_INPUT_SIDE} a side")
    if init is not None and mask is not None:
        if init.size != mask.size and not _same_shape(init.size, mask.size):
            raise InvalidRequest("mask_image", f"the mask is {mask.width}x{mask.height} but the image is "
                                               f"{init.width}x{init.height}; a mask is painted on its image, and one "
                                               "of another shape cannot be stretched to fit without moving what it "
                                               f"covers: paint the mask on this image, or export it at "
                                               f"{init.width}x{init.height}")
        if effective_mask(mask_of(mask), request.mask_mode).getextrema()[1] <= EMPTY_MASK_LEVEL:
            what = ("covers the whole image, so 'inpaint not masked' has nothing to redraw"
                    if request.mask_mode == "not_masked" else "is empty (no white pixels): paint the part to redraw "
                                                              "white, the rest black")
            raise InvalidRequest("mask_image", f"the mask {what}")
    if init is not None and not (request.width and request.height):
        return size_for(init.size, request.scale_by)
    return None


def aspect_notice(i: int, map_size: tuple[int, int], size: tuple[int, int]) -> str:
    """What to say when a control map of another shape is stretched to the output ("" when it fits)."""
    (w, h), (W, H) = map_size, size
    if abs((w / h) / (W / H) - 1) <= ASPECT_TOLERANCE:
        return ""
    return (f"ControlNet unit {i + 1}: its map is {w}x{h} ({w / h:.2f}:1) but the image is {W}x{H} ({W / H:.2f}:1); "
            "the map was stretched to fit, so shapes are distorted. Crop the control image to the output's aspect, "
            "or set the size to match it.")


# -- loading ----------------------------------------------------------------------------------------
def load(request: GenerationRequest, store, *, union: tuple[bool, ...] = (),  # noqa: ANN001
         modes: tuple[int, ...] = ()) -> Inputs:
    """The request's images, opened and sized: init and mask by ``resize_mode`` (a mask of the same
    shape but another size is scaled to its image first), the mask as the part to redraw; control
    maps stretched to the size (a map of another aspect is said in ``notices``)."""
    size = (request.width, request.height)
    init = mask = None
    if request.init_image:
        source = store.open(request.init_image, "init_image")
        init = resize(source.convert("RGB"), size, request.resize_mode)
        if request.mask_image:
            painted = store.open(request.mask_image, "mask_image")
            check_images(request.replace(width=size[0], height=size[1]),
                         {"init_image": source, "mask_image": painted})
            painted = mask_of(painted)
            if painted.size != source.size:
                painted = painted.resize(source.size, LANCZOS)
            mask = effective_mask(resize(painted, size, request.resize_mode), request.mask_mode)
    opened = [store.open(u.map or u.image, "controls").convert("RGB") for u in request.controls]
    notices = tuple(n for n in (aspect_notice(i, m.size, size) for i, m in enumerate(opened)) if n)
    maps = tuple(m if m.size == size else m.resize(size, LANCZOS) for m in opened)
    prompts = tuple(tuple(store.open(x, "image_prompts").convert("RGB") for x in p.images)
                    for p in request.image_prompts)
    references = tuple(store.open(x, "references").convert("RGB") for x in request.references)
    return Inputs(init=init, mask=mask, control_maps=maps, union=union or (False,) * len(maps), modes=modes,
                  image_prompts=prompts, references=references, notices=notices)


# -- inpaint: only masked, and the overlay ----------------------------------------------------------
def _grow(lo: int, hi: int, length: int, limit: int) -> tuple[int, int]:
    """[lo, hi) grown to ``length`` around its centre, shifted to lie within [0, limit)."""
    length = min(length, limit)
    start = (lo + hi) // 2 - length // 2
    start = min(max(0, start), limit - length)
    return start, start + length


def crop_box(mask: Image.Image, padding: int, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A1111's "only masked" region: the mask's bounding box plus ``padding``, grown to the working
    size's aspect ratio, within the image. ``None`` when the mask is empty."""
    bbox = mask.point(lambda v: 255 if v > EMPTY_MASK_LEVEL else 0).getbbox()
    if bbox is None:
        return None
    width, height = mask.size
    x1, y1 = max(0, bbox[0] - padding), max(0, bbox[1] - padding)
    x2, y2 = min(width, bbox[2] + padding), min(height, bbox[3] + padding)
    ratio = size[0] / size[1]
    if (x2 - x1) / (y2 - y1) < ratio:
        x1, x2 = _grow(x1, x2, round((y2 - y1) * ratio), width)
    else:
        y1, y2 = _grow(y1, y2, round((x2 - x1) / ratio), height)
    return x1, y1, x2, y2


def cropped(images: Inputs, box: tuple[int, int, int, int], size: tuple[int, int]) -> Inputs:
    """What the pipeline sees for "only masked": the box of init, mask and control maps, scaled up to
    the working size."""
    def part(image):
        return image.crop(box).resize(size, LANCZOS)

    return dataclasses.replace(images, init=part(images.init), mask=part(images.mask),
                               control_maps=tuple(part(m) for m in images.control_maps))


def overlay(original: Image.Image, generated: Image.Image, mask: Image.Image, blur: int) -> Image.Image:
    """The original outside the mask, the generated image inside, blended over ``blur`` px just inside
    the mask's edge: the blur never reaches outside the mask, so no pixel the user did not mask changes."""
    soft = ImageChops.darker(mask.filter(ImageFilter.GaussianBlur(blur)), mask) if blur else mask
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), soft)


def finish_inpaint(images: Inputs, generated: Image.Image, blur: int,
                   box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """A generated image back onto the original: pasted into ``box`` ("only masked"), then overlaid."""
    if box is not None:
        canvas = images.init.copy()
        canvas.paste(generated.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), LANCZOS), box[:2])
        generated = canvas
    return overlay(images.init, generated, images.mask, blur)


# -- outpaint ---------------------------------------------------------------------------------------
def check_outpaint(size: tuple[int, int], left: int, right: int, up: int, down: int, fill: str) -> tuple[int, int]:
    """The outpainted canvas size, or ``InvalidRequest`` naming the side or the fill."""
    lo, hi = LIMITS["outpaint"]
    for name, value in (("left", left), ("right", right), ("up", up), ("down", down)):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidRequest(name, f"pixels to add must be a whole number within {lo}..{hi}, got {value!r}")
    if not left + right + up + down:
        raise InvalidRequest("outpaint", "add pixels on at least one side (left, right, up or down)")
    if fill not in OUTPAINT_FILLS:
        raise InvalidRequest("fill", f"must be one of {list(OUTPAINT_FILLS)}, got {fill!r}")
    width, height = size[0] + left + right, size[1] + up + down
    if max(width, height) > MAX_SIDE:
        raise InvalidRequest("outpaint", f"the canvas would be {width}x{height}, over the {MAX_SIDE} px limit a "
                                         "side; add fewer pixels or scale the image down first")
    return width, height


def outpaint_canvas(image: Image.Image, left: int = 0, right: int = 0, up: int = 0, down: int = 0,
                    fill: str = "edge") -> tuple[Image.Image, Image.Image]:
    """(canvas, mask): ``image`` on a canvas extended by the given pixels, the new area filled with the
    nearest edge colours ("edge") or the whole image stretched and blurred ("blur"), and a mask that is
    white exactly there. Inpainting the two is outpainting."""
    width, height = check_outpaint(image.size, left, right, up, down, fill)
    image = image.convert("RGB")
    if fill == "edge":
        canvas = Image.fromarray(np.pad(np.asarray(image), ((up, down), (left, right), (0, 0)), mode="edge"))
    else:
        radius = max(left, right, up, down) / 2
        canvas = image.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(radius))
        canvas.paste(image, (left, up))
    mask = Image.new("L", (width, height), 255)
    mask.paste(0, (left, up, left + image.width, up + image.height))
    return canvas, mask

