"""Known model families and models: data only, no torch.

A *family* says how to drive an architecture: the diffusers pipeline class per task, default
steps/guidance/size, how a negative prompt works, how many prompt tokens it reads, and which
state-dict keys identify its single-file checkpoints. A *model* is one set of weights of a
family, from the hub, a local folder or a single file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.requests import Task


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    label: str
    pipelines: dict[Task, str]                  # diffusers class names per task
    default_steps: int
    default_guidance: float
    default_size: tuple[int, int] = (1024, 1024)
    negative: str = "negative_prompt"           # negative_prompt | true_cfg | none
    true_cfg_scale: float = 4.0                 # used when negative == "true_cfg" and a negative is given
    max_sequence_length: int | None = None      # T5 tokens (FLUX, SD3); None: not a pipeline argument
    token_limit: int = 77                       # tokens the prompt encoder reads; longer is an error
    token_encoder: str = "tokenizer"            # the tokenizer that reads token_limit (T5 on FLUX/SD3)
    prompt_encoders: tuple[str, ...] = ("tokenizer",)   # every tokenizer that reads the prompt
    sampler: str = "Euler"                      # A1111 name of the default scheduler
    guidance_label: str = "CFG scale"
    # Single-file checkpoints: a file belongs to this family if it has every key of one group.
    signatures: tuple[tuple[str, ...], ...] = ()
    base_repo: str = ""                         # hub repo with the configs a single file needs

    def pipeline_class(self, task: Task) -> str:
        try:
            return self.pipelines[task]
        except KeyError:
            raise KeyError(f"{self.label} has no {task.value} pipeline") from None

    @property
    def supports_negative(self) -> bool:
        return self.negative != "none"


FLUX_PIPES = {
    Task.TXT2IMG: "FluxPipeline",
    Task.IMG2IMG: "FluxImg2ImgPipeline",
    Task.INPAINT: "FluxInpaintPipeline",
    Task.CONTROLNET: "FluxControlNetPipeline",
}
SDXL_PIPES = {
    Task.TXT2IMG: "StableDiffusionXLPipeline",
    Task.IMG2IMG: "StableDiffusionXLImg2ImgPipeline",
    Task.INPAINT: "StableDiffusionXLInpaintPipeline",
    Task.CONTROLNET: "StableDiffusionXLControlNetPipeline",
}
SD15_PIPES = {
    Task.TXT2IMG: "StableDiffusionPipeline",
    Task.IMG2IMG: "StableDiffusionImg2ImgPipeline",
    Task.INPAINT: "StableDiffusionInpaintPipeline",
    Task.CONTROLNET: "StableDiffusionControlNetPipeline",
}
SD3_PIPES = {
    Task.TXT2IMG: "StableDiffusion3Pipeline",
    Task.IMG2IMG: "StableDiffusion3Img2ImgPipeline",
    Task.INPAINT: "StableDiffusion3InpaintPipeline",
    Task.CONTROLNET: "StableDiffusion3ControlNetPipeline",
}

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("flux-schnell", "FLUX.1 schnell", FLUX_PIPES, default_steps=4, default_guidance=0.0,
           negative="none", max_sequence_length=256, token_limit=256, token_encoder="tokenizer_2",
           prompt_encoders=("tokenizer", "tokenizer_2"), guidance_label="Guidance",
           signatures=(("double_blocks.0.img_attn.qkv.weight",),
                       ("transformer_blocks.0.attn.to_q.weight", "single_transformer_blocks.0.proj_out.weight")),
           base_repo="black-forest-labs/FLUX.1-schnell"),
    Family("flux-dev", "FLUX.1 dev", FLUX_PIPES, default_steps=28, default_guidance=3.5,
           negative="true_cfg", max_sequence_length=512, token_limit=512, token_encoder="tokenizer_2",
           prompt_encoders=("tokenizer", "tokenizer_2"), guidance_label="Distilled guidance",
           signatures=(("double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"),
                       ("transformer_blocks.0.attn.to_q.weight", "time_text_embed.guidance_embedder.linear_1.weight")),
           base_repo="black-forest-labs/FLUX.1-dev"),
    Family("flux2", "FLUX.2 dev", {Task.TXT2IMG: "Flux2Pipeline"}, default_steps=50, default_guidance=4.0,
           negative="none", max_sequence_length=512, token_limit=512, token_encoder="tokenizer",
           guidance_label="Guidance", base_repo="black-forest-labs/FLUX.2-dev"),
    Family("sdxl", "Stable Diffusion XL", SDXL_PIPES, default_steps=30, default_guidance=6.0,
           prompt_encoders=("tokenizer", "tokenizer_2"),
           signatures=(("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",),
                       ("model.diffusion_model.label_emb.0.0.weight",)),
           base_repo="stabilityai/stable-diffusion-xl-base-1.0"),
    Family("sd15", "Stable Diffusion 1.5", SD15_PIPES, default_steps=25, default_guidance=7.0,
           default_size=(512, 512),
           signatures=(("model.diffusion_model.input_blocks.0.0.weight",
                        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"),),
           base_repo="stable-diffusion-v1-5/stable-diffusion-v1-5"),
    Family("sd3", "Stable Diffusion 3.5", SD3_PIPES, default_steps=28, default_guidance=4.5,
           max_sequence_length=256, token_limit=256, token_encoder="tokenizer_3",
           prompt_encoders=("tokenizer", "tokenizer_2", "tokenizer_3"),
           signatures=(("model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight",),),
           base_repo="stabilityai/stable-diffusion-3.5-medium"),
)}


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
