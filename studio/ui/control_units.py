"""The ControlNet tab's units: the widgets of one unit, its live map preview, and the pose editor
(OpenPose JSON in, 18 body keypoints placed by clicking, the map drawn by controlnet_aux)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio import control, forms_controls
from studio.control import keypoints
from studio.errors import InvalidRequest
from studio.models.catalog import FAMILIES
from studio.service import Studio
from studio.ui.errors import shown_as_gr_error

# The values a unit hands to the handler, in this order (UnitWidgets.inputs)
UNIT_INPUTS = ("enable", "type", "model", "mode", "image", "preprocessor", "threshold_a", "threshold_b", "as_is",
               "scale", "start", "end", "resolution", "pixel_perfect")
UNION_TYPES = sorted({t for f in FAMILIES.values() for t in f.control_modes} - set(control.CONTROL_TYPES))
TYPES = [*control.CONTROL_TYPES, *UNION_TYPES]
DEFAULT_NET = "the model's net for the type"
CANVAS_SIDE = 512                                # the pose editor draws at this long side


def net_choices(studio: Studio, model_id: str) -> list[tuple[str, str]]:
    """The ControlNet picker: "" (the model's own net for the type) and every net its family can use."""
    try:
        entry = studio.registry.get(model_id)
    except Exception:  # noqa: BLE001 - an unknown model: the generate button says why
        return [(DEFAULT_NET, "")]
    return [(DEFAULT_NET, "")] + [(info.describe(), info.name) for info in studio.registry.controlnets(entry)]


def mode_update(studio: Studio, model_id: str, net: str):
    """The mode picker: shown for a union net, with its modes ("" = the unit's type)."""
    try:
        entry = studio.registry.get(model_id)
        info = next((n for n in studio.registry.controlnets(entry) if n.name == net), None)
    except Exception:  # noqa: BLE001
        info = None
    if info is None or not info.union:
        return gr.update(visible=False, value="")
    return gr.update(visible=True, choices=[("same as the type", "")] + [(m, m) for m in info.modes], value="")


def output_size(studio: Studio, model_id: str, width, height) -> tuple[int, int]:  # noqa: ANN001
    try:
        d = studio.defaults(model_id)
    except Exception:  # noqa: BLE001
        d = {"width": 512, "height": 512}
    w = int(width) if isinstance(width, (int, float)) and width and width > 0 else int(d["width"])
    h = int(height) if isinstance(height, (int, float)) and height and height > 0 else int(d["height"])
    return w, h


@dataclass
class PoseEditor:
    box: gr.Accordion
    text: gr.Textbox                  # the OpenPose JSON: the editor's state, readable and editable
    upload: gr.File
    part: gr.Dropdown
    canvas: gr.Image
    draw: gr.Button
    use: gr.Button

    @classmethod
    def create(cls, t: str) -> PoseEditor:
        with gr.Accordion("Pose from keypoints (no detector needed)", open=False, visible=False) as box:
            with gr.Row():
                upload = gr.File(label="OpenPose JSON", file_types=[".json"], type="filepath", height=90)
                part = gr.Dropdown(list(keypoints.BODY_PARTS), value="nose", label="Keypoint to place",
                                   info="then click on the canvas")
            canvas = gr.Image(label="Canvas (click to place the keypoint)", interactive=False, type="pil",
                              format="png", height=320, elem_id=f"{t}-pose-canvas")
            text = gr.Textbox(value="", label="Keypoints (OpenPose JSON)", lines=3, max_lines=8,
                              info="As OpenPose and the openpose editor write it; edit, then Draw.",
                              elem_id=f"{t}-pose-json")
            with gr.Row():
                draw = gr.Button("Draw", size="sm")
                use = gr.Button("Use as this unit's map", size="sm", variant="secondary", elem_id=f"{t}-pose-use")
        return cls(box, text, upload, part, canvas, draw, use)


def _canvas_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    k = CANVAS_SIDE / max(w, h)
    return max(16, round(w * k)), max(16, round(h * k))


@dataclass
class UnitWidgets:
    index: int
    fields: dict
    preview: gr.Image
    thresholds: gr.Row
    pose: PoseEditor

    @classmethod
    def create(cls, studio: Studio, index: int, t: str) -> UnitWidgets:
        u = f"{t}-unit{index}"
        with gr.Accordion(f"ControlNet unit {index + 1}", open=index == 0, elem_id=u):
            enable = gr.Checkbox(value=index == 0, label="Enable", elem_id=f"{u}-enable")
            with gr.Row():
                image = gr.Image(label="Control image", type="filepath", sources=["upload", "clipboard"], height=260,
                                 elem_id=f"{u}-image", elem_classes=["studio-images"])
                preview = gr.Image(label="Map preview", interactive=False, type="pil", format="png", height=260,
                                   elem_id=f"{u}-preview", elem_classes=["studio-images"])
            as_is = gr.Checkbox(value=False, label="Use the map as is (the image is a control map already)",
                                elem_id=f"{u}-as-is")
            with gr.Row():
                kind = gr.Dropdown(TYPES, value="canny", label="Type", allow_custom_value=True, elem_id=f"{u}-type")
                pre = gr.Dropdown(control.choices("canny"), value="canny", label="Preprocessor",
                                  allow_custom_value=True, elem_id=f"{u}-preprocessor")
                net = gr.Dropdown(net_choices(studio, ""), value="", label="ControlNet", allow_custom_value=True,
                                  elem_id=f"{u}-model")
                mode = gr.Dropdown([("same as the type", "")], value="", label="Control mode (union nets)",
                                   visible=False, allow_custom_value=True, elem_id=f"{u}-mode")
            with gr.Row() as thresholds:
                low = gr.Slider(0, 255, value=100, step=1, label="Canny low threshold", elem_id=f"{u}-low")
                high = gr.Slider(0, 255, value=200, step=1, label="Canny high threshold", elem_id=f"{u}-high")
            with gr.Row():
                scale = gr.Slider(0, 2, value=1.0, step=0.05, label="Conditioning scale", elem_id=f"{u}-scale")
                start = gr.Slider(0, 1, value=0.0, step=0.01, label="Guidance start", elem_id=f"{u}-start")
                end = gr.Slider(0, 1, value=1.0, step=0.01, label="Guidance end", elem_id=f"{u}-end")
            with gr.Row():
                resolution = gr.Slider(64, 2048, value=512, step=8, label="Preprocessor resolution",
                                       elem_id=f"{u}-resolution")
                pixel = gr.Checkbox(value=False, label="Pixel perfect (the resolution of the output size)",
                                    elem_id=f"{u}-pixel-perfect")
            pose = PoseEditor.create(u)
        fields = dict(zip(UNIT_INPUTS, (enable, kind, net, mode, image, pre, low, high, as_is, scale, start, end,
                                        resolution, pixel), strict=True))
        return cls(index, fields, preview, thresholds, pose)

    @property
    def inputs(self) -> list:
        return [self.fields[name] for name in UNIT_INPUTS]

    def unit(self, values: dict):
        """The unit of these widget values, or None when it is off."""
        if not values["enable"]:
            return None
        return forms_controls.unit(self.index, **{k: v for k, v in values.items() if k != "enable"})

    # -- events ------------------------------------------------------------------------------
    def wire(self, studio: Studio, base_fields: dict) -> None:
        f, model = self.fields, base_fields["model"]
        size_inputs = [model, base_fields["width"], base_fields["height"]]

        def on_type(kind: str):
            names = control.choices(kind)
            return (gr.update(choices=names, value=names[0]), gr.update(visible=kind == "canny"),
                    gr.update(visible=kind == "pose"))

        f["type"].change(on_type, f["type"], [f["preprocessor"], self.thresholds, self.pose.box],
                         api_visibility="private", queue=False)
        f["model"].change(lambda m, n: mode_update(studio, m, n), [model, f["model"]], f["mode"],
                          api_visibility="private", queue=False)
        model.change(lambda m: gr.update(choices=net_choices(studio, m), value=""), model, f["model"],
                     api_visibility="private", queue=False)

        @shown_as_gr_error
        def preview(model_id, width, height, *values):
            named = dict(zip(UNIT_INPUTS, values, strict=True))
            if not named["image"]:
                return None
            unit = forms_controls.unit(self.index, **{k: v for k, v in named.items() if k != "enable"})
            w, h = output_size(studio, model_id, width, height)
            return studio.preview_map(unit, model_id, w, h)

        triggers = [f["image"].change, f["preprocessor"].change, f["as_is"].change, f["pixel_perfect"].change,
                    f["threshold_a"].release, f["threshold_b"].release, f["resolution"].release]
        gr.on(triggers, preview, [*size_inputs, *self.inputs], self.preview, api_visibility="private",
              concurrency_id="control-preview")
        self._wire_pose(studio, size_inputs)

    def _wire_pose(self, studio: Studio, size_inputs: list) -> None:
        pose, f = self.pose, self.fields

        def people(text: str, size):  # noqa: ANN001
            return keypoints.parse(text, size) if text and text.strip() else (keypoints.STANDING,)

        @shown_as_gr_error
        def draw(text: str, model_id, width, height):
            size = output_size(studio, model_id, width, height)
            found = people(text, size)
            return keypoints.to_json(found, size), keypoints.render(found, _canvas_size(size))

        @shown_as_gr_error
        def load(path, model_id, width, height):
            if not path:
                return gr.update(), gr.update()
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise InvalidRequest("keypoints", f"cannot read {Path(path).name} as text ({err})") from err
            return draw(text, model_id, width, height)

        @shown_as_gr_error
        def place(text: str, part: str, model_id, width, height, evt: gr.SelectData):
            size = output_size(studio, model_id, width, height)
            canvas = _canvas_size(size)
            x, y = evt.index
            moved = keypoints.move(people(text, size), part, x / canvas[0], y / canvas[1])
            return keypoints.to_json(moved, size), keypoints.render(moved, canvas)

        @shown_as_gr_error
        def use(text: str, model_id, width, height):
            size = output_size(studio, model_id, width, height)
            return keypoints.render(people(text, size), size), True

        common = dict(api_visibility="private")
        outs = [pose.text, pose.canvas]
        pose.box.expand(draw, [pose.text, *size_inputs], outs, **common)
        pose.draw.click(draw, [pose.text, *size_inputs], outs, **common)
        pose.upload.change(load, [pose.upload, *size_inputs], outs, **common)
        pose.canvas.select(place, [pose.text, pose.part, *size_inputs], outs, **common)
        # the unit's image is a gr.Image(type="filepath"): a returned PIL image is saved to gradio's cache
        pose.use.click(use, [pose.text, *size_inputs], [f["image"], f["as_is"]], **common)
