"""GPU models and what a plan's VRAM means: a whole GPU, several, or a slice of one.

The API gives a GPU plan only ``gpu_type`` (e.g. ``NVIDIA_A100``) and ``gpu_vram_gb`` (the VRAM
the plan gets). Vultr sells fractions of one physical GPU (an A100 plan with 4 GB of VRAM is a
twentieth of an 80 GB A100), so the VRAM alone does not say how much GPU an agent is renting.
The share is the plan's VRAM against the full VRAM of one physical GPU of that model, from the
table below: the one place these figures live.

Each figure is the vendor's published memory per GPU; where a model ships in several memory sizes,
the entry is the size the providers behind this API deploy, with the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .money import to_decimal


@dataclass(frozen=True)
class GpuModel:
    name: str  # as people write it: "A100", "RTX 6000 Ada"
    vram_gb: int  # one physical GPU
    source: str


_MODELS = (
    GpuModel("A100", 80, "NVIDIA A100 datasheet (40 GB and 80 GB models); Vultr's whole-A100 plan "
             "vcg-a100-12c-120g-80vram reports gpu_vram_gb 80 and its slices 4/8/10/20/40 GB, so Vultr "
             "deploys the 80 GB model (https://www.nvidia.com/en-us/data-center/a100/)"),
    GpuModel("A40", 48, "NVIDIA A40 datasheet: 48 GB GDDR6 (https://www.nvidia.com/en-us/data-center/a40/)"),
    GpuModel("A16", 16, "NVIDIA A16 datasheet: one board is 4 GPUs of 16 GB GDDR6 each "
             "(https://www.nvidia.com/en-us/data-center/products/a16-gpu/)"),
    GpuModel("L4", 24, "NVIDIA L4 datasheet: 24 GB GDDR6 (https://www.nvidia.com/en-us/data-center/l4/)"),
    GpuModel("L40S", 48, "NVIDIA L40S datasheet: 48 GB GDDR6 (https://www.nvidia.com/en-us/data-center/l40s/)"),
    GpuModel("H100", 80, "NVIDIA H100 datasheet: 80 GB HBM3 (SXM) / HBM2e (PCIe) "
             "(https://www.nvidia.com/en-us/data-center/h100/)"),
    GpuModel("H100 NVL", 94, "NVIDIA H100 datasheet: H100 NVL 94 GB HBM3 (https://www.nvidia.com/en-us/data-center/h100/)"),
    GpuModel("H200", 141, "NVIDIA H200 datasheet: 141 GB HBM3e (https://www.nvidia.com/en-us/data-center/h200/)"),
    GpuModel("MI300X", 192, "AMD Instinct MI300X datasheet: 192 GB HBM3 "
             "(https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html)"),
    GpuModel("MI325X", 256, "AMD Instinct MI325X datasheet: 256 GB HBM3E "
             "(https://www.amd.com/en/products/accelerators/instinct/mi300/mi325x.html)"),
    GpuModel("RTX 4000 Ada", 20, "NVIDIA RTX 4000 Ada Generation datasheet: 20 GB GDDR6 "
             "(https://www.nvidia.com/en-us/design-visualization/rtx-4000/)"),
    GpuModel("RTX 6000 Ada", 48, "NVIDIA RTX 6000 Ada Generation datasheet: 48 GB GDDR6 "
             "(https://www.nvidia.com/en-us/design-visualization/rtx-6000/)"),
)
MODELS = {m.name: m for m in _MODELS}
# Lookup by the model's name with spaces removed: "RTX_6000_ADA" and "rtx6000ada" both match.
_BY_KEY = {m.name.replace(" ", "").upper(): m for m in _MODELS}
_VENDOR_WORDS = {"NVIDIA", "AMD", "INSTINCT", "TESLA", "GPU"}
_MEMORY_WORD = re.compile(r"^(\d{1,4})GB$")


def model_of(gpu_type: Any) -> tuple[str | None, int | None]:
    """``(model name, VRAM of one physical GPU)`` for an API ``gpu_type`` string.

    The longest run of words that names a known model wins ("NVIDIA_H100_NVL" is an H100 NVL,
    not an H100); a memory word such as ``40GB`` in the type names the variant and overrides the
    table. An unknown model keeps its own words as the name, with no VRAM figure."""
    if not isinstance(gpu_type, str) or not gpu_type.strip():
        return None, None
    words = [w for w in re.split(r"[^A-Z0-9]+", gpu_type.upper()) if w]
    memory = next((int(m.group(1)) for w in words if (m := _MEMORY_WORD.match(w))), None)
    words = [w for w in words if w not in _VENDOR_WORDS and not _MEMORY_WORD.match(w)]
    for n in range(len(words), 0, -1):
        model = _BY_KEY.get("".join(words[:n]))
        if model:
            return model.name, memory or model.vram_gb
    return (" ".join(words) or None), memory


def _article(name: str) -> str:
    # "an A100", "an H100", "an L40S", "an MI300X", "an RTX ...", but "a T4", "a B200": letters
    # whose spoken name starts with a vowel sound take "an".
    return "an" if name[:1].upper() in "AEFHILMNORSX8" else "a"


def describe(gpu_type: Any, plan_vram_gb: Any) -> dict:
    """The GPU fields of a plan: ``gpu_model``, ``gpu_count``, ``gpu_vram_gb``, ``gpu_fraction``
    (share of one physical GPU, 1 for whole GPUs) and ``gpu_summary`` (one line for people), each
    None when unknown. A plan without a GPU gets all None."""
    out: dict[str, Any] = {"gpu_model": None, "gpu_count": None, "gpu_vram_gb": None, "gpu_fraction": None, "gpu_summary": None}
    name, full = model_of(gpu_type)
    vram = _vram(plan_vram_gb)
    if name is None and vram is None:
        return out
    out["gpu_model"], out["gpu_vram_gb"] = name, vram
    label = name or "GPU"
    if vram is None:
        out["gpu_summary"] = f"{label} (VRAM not published)"
        return out
    if not full:
        out["gpu_summary"] = f"{label} ({vram} GB VRAM; share of one GPU unknown)"
        return out
    share = Fraction(str(vram)) / full
    if share < 1:
        out.update(gpu_count=1, gpu_fraction=round(float(share), 6))
        out["gpu_summary"] = f"{share.numerator}/{share.denominator} of {_article(label)} {label} ({vram} GB VRAM)"
    elif share.denominator == 1:
        count = int(share)
        out.update(gpu_count=count, gpu_fraction=1.0)
        out["gpu_summary"] = f"{count} × {label} ({vram} GB VRAM)" if count > 1 else f"1 whole {label} ({vram} GB VRAM)"
    else:  # more than one GPU but not a whole number of them: the figures disagree, say so
        out["gpu_summary"] = f"{label} ({vram} GB VRAM; not a whole number of {full} GB GPUs)"
    return out


def _vram(value: Any) -> int | float | None:
    """A positive VRAM figure as a JSON number (whole GB as an integer), else None."""
    d = to_decimal(value)
    if d is None or d <= 0:
        return None
    return int(d) if d == d.to_integral_value() else float(d)
