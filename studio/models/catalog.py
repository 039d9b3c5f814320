"""Known model families and models: data only, no torch.

A *family* says how to drive an architecture: the diffusers pipeline class per task, default
steps/guidance/size, how a negative prompt works, how many prompt tokens it reads, and which
state-dict keys identify its single-file checkpoints. A *model* is one set of weights of a
family, from the hub, a local folder or a single file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from studio.errors import InvalidRequest
from studio.requests import Task


# A1111 sampler names -> (diffusers scheduler class, extra config), per sampler kind.
SAMPLERS: dict[str, dict[str, tuple[str, dict]]] = {
    "sd": {
        "Euler": ("EulerDiscreteScheduler", {}),
        "Euler a": ("EulerAncestralDiscreteScheduler", {}),
        "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
        "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
        "DDIM": ("DDIMScheduler", {}),
        "UniPC": ("UniPCMultistepScheduler", {}),
    },
    "flow": {"Euler": ("FlowMatchEulerDiscreteScheduler", {})},   # flow matching: its own Euler
}


@dataclass(frozen=True, slots=True)
class PipeSpec:
    """One diffusers pipeline class and what its ``__call__`` takes. The binders read these flags;
    ``tests/test_binders.py`` checks each against the real signature."""

    cls: str
    size: bool = True                 # height / width
    negative: bool = True             # negative_prompt
    true_cfg: bool = False            # true_cfg_scale (FLUX: a negative prompt needs it)
    ip_adapter: bool = False          # load_ip_adapter + ip_adapter_image
    control_arg: str = ""             # controlled pipelines: where the map goes (control_image | image)
    control_mode: bool = False        # control_mode (union ControlNets)
    references: bool = False          # image=[...] read as reference images (FLUX.2)
    sequence_length: bool = False     # max_sequence_length


def _pipes(**specs: PipeSpec) -> dict[tuple[Task, bool], PipeSpec]:
    """``txt2img=..., img2img_controlled=...`` -> {(task, controlled): spec}."""
    return {(Task(name.removesuffix("_controlled")), name.endswith("_controlled")): spec
            for name, spec in specs.items()}


_FLUX = dict(negative=True, true_cfg=True, ip_adapter=True, sequence_length=True)
_FLUX_CN = dict(control_arg="control_image", control_mode=True, sequence_length=True)
FLUX_PIPES = _pipes(
    txt2img=PipeSpec("FluxPipeline", **_FLUX),
    img2img=PipeSpec("FluxImg2ImgPipeline", **_FLUX),
    inpaint=PipeSpec("FluxInpaintPipeline", **_FLUX),
    txt2img_controlled=PipeSpec("FluxControlNetPipeline", **_FLUX, control_arg="control_image", control_mode=True),
    img2img_controlled=PipeSpec("FluxControlNetImg2ImgPipeline", negative=False, **_FLUX_CN),
    inpaint_controlled=PipeSpec("FluxControlNetInpaintPipeline", negative=False, **_FLUX_CN),
)
SDXL_PIPES = _pipes(
    txt2img=PipeSpec("StableDiffusionXLPipeline", ip_adapter=True),
    img2img=PipeSpec("StableDiffusionXLImg2ImgPipeline", size=False, ip_adapter=True),
    inpaint=PipeSpec("StableDiffusionXLInpaintPipeline", ip_adapter=True),
    txt2img_controlled=PipeSpec("StableDiffusionXLControlNetPipeline", ip_adapter=True, control_arg="image"),
    img2img_controlled=PipeSpec("StableDiffusionXLControlNetImg2ImgPipeline", ip_adapter=True,
                                control_arg="control_image"),
    inpaint_controlled=PipeSpec("StableDiffusionXLControlNetInpaintPipeline", ip_adapter=True,
                                control_arg="control_image"),
)
SD15_PIPES = _pipes(
    txt2img=PipeSpec("StableDiffusionPipeline", ip_adapter=True),
    img2img=PipeSpec("StableDiffusionImg2ImgPipeline", size=False, ip_adapter=True),
    inpaint=PipeSpec("StableDiffusionInpaintPipeline", ip_adapter=True),
    txt2img_controlled=PipeSpec("StableDiffusionControlNetPipeline", ip_adapter=True, control_arg="image"),
    img2img_controlled=PipeSpec("StableDiffusionControlNetImg2ImgPipeline", ip_adapter=True,
                                control_arg="control_image"),
    inpaint_controlled=PipeSpec("StableDiffusionControlNetInpaintPipeline", ip_adapter=True,
                                control_arg="control_image"),
)
SD3_PIPES = _pipes(   # IP-Adapter: InstantX's SD3.5 adapter (SD3IPAdapterMixin)
    txt2img=PipeSpec("StableDiffusion3Pipeline", ip_adapter=True, sequence_length=True),
    img2img=PipeSpec("StableDiffusion3Img2ImgPipeline", ip_adapter=True, sequence_length=True),
    inpaint=PipeSpec("StableDiffusion3InpaintPipeline", ip_adapter=True, sequence_length=True),
    txt2img_controlled=PipeSpec("StableDiffusion3ControlNetPipeline", ip_adapter=True, sequence_length=True,
                                control_arg="control_image"),
)
# Inpaint models (a first layer that also reads the mask and the masked image) serve inpaint only,
# with their own class: FLUX.1 Fill, SD1.5 / SDXL inpainting checkpoints (9-channel UNet).
FLUX_FILL_PIPES = _pipes(inpaint=PipeSpec("FluxFillPipeline", negative=False, sequence_length=True))
SDXL_INPAINT_PIPES = _pipes(inpaint=PipeSpec("StableDiffusionXLInpaintPipeline", ip_adapter=True))
SD15_INPAINT_PIPES = _pipes(inpaint=PipeSpec("StableDiffusionInpaintPipeline", ip_adapter=True))
FLUX2_PIPES = _pipes(
    txt2img=PipeSpec("Flux2Pipeline", negative=False, references=True, sequence_length=True),
)
# InstantX / Shakker-Labs FLUX.1 union ControlNets number their modes so (the demo union net too)
FLUX_UNION_MODES = {"canny": 0, "tile": 1, "depth": 2, "blur": 3, "pose": 4, "gray": 5, "lq": 6}
# xinsir's SDXL union net (ControlNetUnionModel), as its model card numbers them
XINSIR_UNION_MODES = {"pose": 0, "depth": 1, "scribble": 2, "softedge": 2, "canny": 3, "lineart": 3, "mlsd": 3,
                      "normal": 4, "seg": 5}
# SDXL union nets run in their own pipelines (control_image + control_mode)
_SDXL_UNION = dict(ip_adapter=True, control_arg="control_image", control_mode=True)
SDXL_UNION_PIPES = _pipes(
    txt2img_controlled=PipeSpec("StableDiffusionXLControlNetUnionPipeline", **_SDXL_UNION),
    img2img_controlled=PipeSpec("StableDiffusionXLControlNetUnionImg2ImgPipeline", **_SDXL_UNION),
    inpaint_controlled=PipeSpec("StableDiffusionXLControlNetUnionInpaintPipeline", **_SDXL_UNION),
)


@dataclass(frozen=True, slots=True)
class HubControlNet:
    """A ControlNet on the hub, for one family: the maps it reads and, for a union net, the mode
    number of each (as its model card numbers them). CUDA users download it on first use."""

    repo: str
    types: tuple[str, ...]
    label: str
    modes: dict[str, int] = field(default_factory=dict)   # union nets only
    cls: str = ""                                         # when not the family's controlnet_class

    @property
    def union(self) -> bool:
        return bool(self.modes)


FLUX_CONTROLNETS = (
    HubControlNet("InstantX/FLUX.1-dev-Controlnet-Canny", ("canny",), "InstantX canny"),
    HubControlNet("Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro", tuple(FLUX_UNION_MODES), "Shakker-Labs union pro",
                  modes=FLUX_UNION_MODES),
)
SDXL_CONTROLNETS = (
    HubControlNet("diffusers/controlnet-canny-sdxl-1.0", ("canny",), "diffusers canny"),
    HubControlNet("diffusers/controlnet-depth-sdxl-1.0", ("depth",), "diffusers depth"),
    HubControlNet("xinsir/controlnet-openpose-sdxl-1.0", ("pose",), "xinsir openpose"),
    HubControlNet("xinsir/controlnet-union-sdxl-1.0", tuple(XINSIR_UNION_MODES), "xinsir union",
                  modes=XINSIR_UNION_MODES, cls="ControlNetUnionModel"),
)
SD15_CONTROLNETS = (
    HubControlNet("lllyasviel/control_v11p_sd15_canny", ("canny",), "ControlNet 1.1 canny"),
    HubControlNet("lllyasviel/control_v11f1p_sd15_depth", ("depth",), "ControlNet 1.1 depth"),
    HubControlNet("lllyasviel/control_v11p_sd15_openpose", ("pose",), "ControlNet 1.1 openpose"),
)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    label: str
    pipes: dict[tuple[Task, bool], PipeSpec]    # (task, controlled?) -> pipeline class and its arguments
    default_steps: int
    default_guidance: float
    default_size: tuple[int, int] = (1024, 1024)
    negative: str = "negative_prompt"           # negative_prompt | true_cfg | none
    true_cfg_scale: float = 4.0                 # used when negative == "true_cfg" and a negative is given
    max_sequence_length: int | None = None      # T5 tokens (FLUX, SD3); None: not a pipeline argument
    token_limit: int = 77                       # tokens the prompt encoder reads; longer is an error
    token_encoder: str = "tokenizer"            # the tokenizer that reads token_limit (T5 on FLUX/SD3)
    prompt_encoders: tuple[str, ...] = ("tokenizer",)   # every tokenizer that reads the prompt
    sampler_kind: str = "sd"                    # which SAMPLERS table: sd | flow
    sampler: str = "Euler"                      # A1111 name of the default scheduler
    guidance_label: str = "CFG scale"
    # Single-file checkpoints: a file belongs to this family if it has every key of one group.
    signatures: tuple[tuple[str, ...], ...] = ()
    base_repo: str = ""                         # hub repo with the configs a single file needs
    transformer_files: bool = False             # single files usually hold the transformer only
    controlnet_class: str = ""                  # diffusers class of this family's ControlNets ("": none)
    multi_controlnet_class: str = ""            # several nets at once
    control_modes: dict[str, int] = field(default_factory=dict)   # union nets: control type -> mode number
    controlnets: tuple[HubControlNet, ...] = ()  # the hub's nets for this family (the first per type: its default)
    union_pipes: dict[tuple[Task, bool], PipeSpec] = field(default_factory=dict)  # nets of union_controlnet_class
    union_controlnet_class: str = ""            # a union net class with pipelines of its own (SDXL)
    multi_union_class: str = ""                 # several such nets at once
    max_references: int = 0                     # reference images (FLUX.2)
    default_strength: float = 0.75              # img2img (inpaint: 1.0)
    lora_family: str = ""                       # which studio.loras.families entry its LoRAs belong to

    def pipe(self, task: Task, controlled: bool = False, union: bool = False) -> PipeSpec:
        """The pipeline for ``task`` (with ControlNets when ``controlled``; ``union``: nets of the
        family's ``union_controlnet_class``); ``InvalidRequest`` naming the field when there is none."""
        spec = (self.union_pipes if union else self.pipes).get((Task(task), controlled))
        if spec is None:
            if (Task(task), False) not in self.pipes:
                raise InvalidRequest("task", f"{self.label} has no {Task(task).value} pipeline")
            raise InvalidRequest("controls", f"{self.label} has no ControlNet pipeline for {Task(task).value}")
        return spec

    def pipeline_class(self, task: Task, controlled: bool = False) -> str:
        return self.pipe(task, controlled).cls

    @property
    def base_task(self) -> Task:
        """The task whose class loads the model (the others derive from it): txt2img, or for an
        inpaint-only family (FLUX.1 Fill, inpainting checkpoints) inpaint."""
        return Task.TXT2IMG if (Task.TXT2IMG, False) in self.pipes else next(iter(self.pipes))[0]

    @property
    def supports_negative(self) -> bool:
        return self.negative != "none"

    @property
    def samplers(self) -> dict[str, tuple[str, dict]]:
        return SAMPLERS[self.sampler_kind]

    @property
    def ip_adapter(self) -> bool:
        return any(spec.ip_adapter for spec in self.pipes.values())


_FLUX_FAMILY = dict(sampler_kind="flow", guidance_label="Guidance", token_encoder="tokenizer_2",
                    prompt_encoders=("tokenizer", "tokenizer_2"), transformer_files=True,
                    controlnet_class="FluxControlNetModel", multi_controlnet_class="FluxMultiControlNetModel",
                    control_modes=FLUX_UNION_MODES, controlnets=FLUX_CONTROLNETS, default_strength=0.85,
                    lora_family="flux1")
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("flux-schnell", "FLUX.1 schnell", FLUX_PIPES, default_steps=4, default_guidance=0.0,
           negative="none", max_sequence_length=256, token_limit=256, **_FLUX_FAMILY,
           signatures=(("double_blocks.0.img_attn.qkv.weight",),
                       ("transformer_blocks.0.attn.to_q.weight", "single_transformer_blocks.0.proj_out.weight")),
           base_repo="black-forest-labs/FLUX.1-schnell"),
    Family("flux-dev", "FLUX.1 dev", FLUX_PIPES, default_steps=28, default_guidance=3.5,
           negative="true_cfg", max_sequence_length=512, token_limit=512, **{**_FLUX_FAMILY,
                                                                             "guidance_label": "Distilled guidance"},
           signatures=(("double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"),
                       ("transformer_blocks.0.attn.to_q.weight", "time_text_embed.guidance_embedder.linear_1.weight")),
           base_repo="black-forest-labs/FLUX.1-dev"),
    Family("flux2", "FLUX.2 dev", FLUX2_PIPES, default_steps=50, default_guidance=4.0,
           negative="none", max_sequence_length=512, token_limit=512, token_encoder="tokenizer",
           sampler_kind="flow", guidance_label="Guidance", base_repo="black-forest-labs/FLUX.2-dev",
           max_references=10, lora_family="flux2"),
    Family("sdxl", "Stable Diffusion XL", SDXL_PIPES, default_steps=30, default_guidance=6.0,
           prompt_encoders=("tokenizer", "tokenizer_2"),
           controlnet_class="ControlNetModel", multi_controlnet_class="MultiControlNetModel",
           control_modes=XINSIR_UNION_MODES, controlnets=SDXL_CONTROLNETS, union_pipes=SDXL_UNION_PIPES,
           union_controlnet_class="ControlNetUnionModel", multi_union_class="MultiControlNetUnionModel",
           signatures=(("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",),
                       ("model.diffusion_model.label_emb.0.0.weight",)),
           base_repo="stabilityai/stable-diffusion-xl-base-1.0", lora_family="sdxl"),
    Family("sd15", "Stable Diffusion 1.5", SD15_PIPES, default_steps=25, default_guidance=7.0,
           default_size=(512, 512),
           controlnet_class="ControlNetModel", multi_controlnet_class="MultiControlNetModel",
           controlnets=SD15_CONTROLNETS,
           signatures=(("model.diffusion_model.input_blocks.0.0.weight",
                        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"),),
           base_repo="stable-diffusion-v1-5/stable-diffusion-v1-5", lora_family="sd15"),
    Family("sd3", "Stable Diffusion 3.5", SD3_PIPES, default_steps=28, default_guidance=4.5,
           max_sequence_length=256, token_limit=256, token_encoder="tokenizer_3",
           prompt_encoders=("tokenizer", "tokenizer_2", "tokenizer_3"), sampler_kind="flow",
           controlnet_class="SD3ControlNetModel", multi_controlnet_class="SD3MultiControlNetModel",
           signatures=(("model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight",),),
           base_repo="stabilityai/stable-diffusion-3.5-medium", lora_family="sd3"),
)}



def _inpaint_family(base: str, name: str, label: str, pipes: dict, **changes) -> Family:
    """The inpaint-model twin of family ``base``: same defaults, its own pipeline, no ControlNets."""
    return dataclasses.replace(FAMILIES[base], name=name, label=label, pipes=pipes, signatures=(),
                               controlnet_class="", multi_controlnet_class="", control_modes={}, controlnets=(),
                               union_pipes={}, union_controlnet_class="", multi_union_class="", **changes)


FAMILIES.update({f.name: f for f in (
    _inpaint_family("flux-dev", "flux-fill", "FLUX.1 Fill", FLUX_FILL_PIPES, negative="none", default_steps=50,
                    default_guidance=30.0, base_repo="black-forest-labs/FLUX.1-Fill-dev"),
    _inpaint_family("sdxl", "sdxl-inpaint", "Stable Diffusion XL inpainting", SDXL_INPAINT_PIPES,
                    base_repo="diffusers/stable-diffusion-xl-1.0-inpainting-0.1"),
    _inpaint_family("sd15", "sd15-inpaint", "Stable Diffusion 1.5 inpainting", SD15_INPAINT_PIPES,
                    base_repo="stable-diffusion-v1-5/stable-diffusion-inpainting"),
)})
# A checkpoint of the key family whose first layer takes this many input channels is an inpaint
# model (A1111 tells inpainting checkpoints the same way): the first layer's weight name, in
# diffusers' folder layout (config "in_channels") and in single files (the weight's shape).
INPAINT_VARIANTS: dict[str, tuple[str, int]] = {
    "sd15": ("sd15-inpaint", 9), "sdxl": ("sdxl-inpaint", 9),
    "flux-schnell": ("flux-fill", 384), "flux-dev": ("flux-fill", 384),
}
FIRST_LAYER_KEYS = ("model.diffusion_model.input_blocks.0.0.weight", "img_in.weight", "x_embedder.weight",
                    "model.diffusion_model.img_in.weight")


def inpaint_variant(family: str, in_channels: int | None, out_channels: int | None = None) -> str:
    """``family``, or its inpaint twin when the model's first layer reads the mask and masked image
    too: 9 channels on SD (4 latent + 1 mask + 4 masked image), and on FLUX more than twice the
    transformer's output channels (Fill: 64 + 64 + 256 = 384; a Control model has exactly twice)."""
    twin = INPAINT_VARIANTS.get(family)
    if twin is None or not in_channels:
        return family
    name, channels = twin
    if family.startswith("flux") and out_channels:
        return name if in_channels > 2 * out_channels else family
    return name if in_channels == channels else family


def detect_family(keys: set[str] | frozenset[str]) -> str | None:
    """Family of a single-file checkpoint from its state-dict keys (prefixes stripped).

    Most specific first: a FLUX file with a guidance embedder is dev, without it schnell.
    """
    stripped = set()
    for key in keys:
        for prefix in ("model.diffusion_model.", "transformer.", "diffusion_model."):
            if key.startswith(prefix) and not key.startswith("model.diffusion_model.label_emb") \
                    and not key.startswith("model.diffusion_model.input_blocks") \
                    and not key.startswith("model.diffusion_model.joint_blocks"):
                key = key[len(prefix):]
                break
        stripped.add(key)
    for name in ("flux-dev", "flux-schnell", "sd3", "sdxl", "sd15"):
        for group in FAMILIES[name].signatures:
            if all(k in stripped or k in keys for k in group):
                return name
    return None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model the catalog knows. ``source`` is a hub repo id, or a path for local kinds."""

    id: str
    family: str
    source: str
    kind: str = "hub"                  # hub | folder | single_file | builtin
    label: str = ""
    note: str = ""
    gated: bool = False
    config: str = ""                   # single files: hub repo or folder with the configs (default: family's)
    defaults: dict[str, object] = field(default_factory=dict)   # overrides of the family's

    @property
    def display(self) -> str:
        return self.label or self.id


HUB_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("flux-schnell", "flux-schnell", "black-forest-labs/FLUX.1-schnell",
              label="FLUX.1 schnell (black-forest-labs/FLUX.1-schnell)", note="Apache-2.0, 4 steps"),
    ModelSpec("flux-dev", "flux-dev", "black-forest-labs/FLUX.1-dev", gated=True,
              label="FLUX.1 dev (black-forest-labs/FLUX.1-dev)", note="gated: accept the licence on the hub, then set HF_TOKEN"),
    ModelSpec("flux2-dev", "flux2", "black-forest-labs/FLUX.2-dev", gated=True,
              label="FLUX.2 dev (black-forest-labs/FLUX.2-dev)", note="gated; needs a large GPU or offload"),
    ModelSpec("flux-fill-dev", "flux-fill", "black-forest-labs/FLUX.1-Fill-dev", gated=True,
              label="FLUX.1 Fill dev (black-forest-labs/FLUX.1-Fill-dev)",
              note="gated: accept the licence on the hub, then set HF_TOKEN; inpaint and outpaint only"),
    ModelSpec("sdxl", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0",
              label="SDXL base 1.0 (stabilityai/stable-diffusion-xl-base-1.0)"),
    ModelSpec("sd15", "sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5",
              label="SD 1.5 (stable-diffusion-v1-5/stable-diffusion-v1-5)"),
    ModelSpec("sd3", "sd3", "stabilityai/stable-diffusion-3.5-medium", gated=True,
              label="SD 3.5 medium (stabilityai/stable-diffusion-3.5-medium)", note="gated: set HF_TOKEN"),
)

TINY_RANDOM = ModelSpec(
    "tiny-random", "flux-schnell", "tiny-random", kind="builtin",
    label="tiny-random — checks the install; draws noise",
    note="a FLUX pipeline with random weights built from configs on first start",
    defaults={"default_steps": 4, "default_size": (64, 64), "max_sequence_length": 32, "token_limit": 32},
)


def capability_table() -> str:
    """The catalog x task x modifier table of docs/ARCHITECTURE.md, made from the data (a test
    keeps the doc equal to it; tests/test_binders.py checks every cell against diffusers)."""
    def cell(family: Family, task: Task, controlled: bool) -> str:
        spec = family.pipes.get((task, controlled))
        return f"`{spec.cls}`" if spec else "—"

    def modifier(family: Family, flag: str) -> str:
        def tasks(controlled: bool) -> list[str]:
            return [t.value for t in Task if (spec := family.pipes.get((t, controlled))) and getattr(spec, flag)]

        plain, controlled = tasks(False), tasks(True)
        text = ", ".join(plain) if plain else "—"
        return text + (f"; with controls: {', '.join(controlled)}" if controlled and controlled != plain else "")

    rows = ["| family | txt2img | img2img | inpaint | + controls: txt2img / img2img / inpaint | + image prompts "
            "| + references |", "|---|---|---|---|---|---|---|"]
    for family in FAMILIES.values():
        controls = " / ".join(cell(family, t, True) for t in Task) if family.controlnet_class else "—"
        rows.append(f"| {family.name} | {cell(family, Task.TXT2IMG, False)} | {cell(family, Task.IMG2IMG, False)} | "
                    f"{cell(family, Task.INPAINT, False)} | {controls} | {modifier(family, 'ip_adapter')} | "
                    f"{modifier(family, 'references')} |")
    return "\n".join(rows)


def controlnet_table() -> str:
    """The README's table of the hub ControlNets each family has, their modes (union nets: the
    numbers their model cards give) and which net is the family's default for a type."""
    rows = ["| family | ControlNet (hub id) | reads | default for |", "|---|---|---|---|"]
    groups: dict[int, tuple[tuple[HubControlNet, ...], list[str]]] = {}
    for family in FAMILIES.values():               # families that share their nets (FLUX.1) share rows
        groups.setdefault(id(family.controlnets), (family.controlnets, []))[1].append(family.name)
    for nets, names in groups.values():
        if not nets:
            continue
        for net in nets:
            reads = "union: " + ", ".join(f"{k} {v}" for k, v in net.modes.items()) if net.union else \
                ", ".join(net.types)
            default = [t for t in net.types if next(n for n in nets if t in n.types) is net]
            rows.append(f"| {', '.join(names)} | `{net.repo}`{' (' + net.cls + ')' if net.cls else ''} | {reads} | "
                        f"{', '.join(default) or '—'} |")
    return "\n".join(rows)
