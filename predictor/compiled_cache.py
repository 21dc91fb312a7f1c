"""What a load decided, kept under MODEL_CACHE_DIR so the next start skips deciding it again.

A cold load imports TensorFlow, converts the model to OpenVINO, measures both runtimes and the
batch size, and for a reduced precision quantizes and judges it: ~30 s for the demo model, a
minute for VGG16. All of it depends only on the model file, the CPU, the thread count, the
options that chose it and the software that did it, so an entry is keyed by exactly those
(`key`). An entry holds the OpenVINO model that is served (`model.xml` + `model.bin`, FP32
weights as converted, or as quantized) and `decisions.json` (runtime, precision, the guard's
verdicts, the batch size). A warm start reads them and compiles: no TensorFlow, no conversion,
no measuring.

Entries are written to a temporary folder and renamed into place, so a reader (another replica
on a shared volume, or this one after a crash) sees a whole entry or none. An entry that cannot
be read is deleted and the load is done cold.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when what an entry holds, or how it is decided, changes
DECISIONS = "decisions.json"
MODEL_XML = "model.xml"


def cpu_model() -> str:
    """The CPU's model name (an entry measured on one CPU says nothing about another)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def key(**inputs: object) -> str:
    """The entry's name: a digest of what the decisions depend on (`inputs`: the model's
    SHA-256, threads, options...) plus the CPU and the software versions."""
    material = {
        **{name: str(value) for name, value in inputs.items()},
        "format": FORMAT,
        "cpu": cpu_model(),
        "cpu_flags": hashlib.sha256(" ".join(sorted(_flags())).encode()).hexdigest()[:16],
        "openvino": _version("openvino"),
        "nncf": _version("nncf"),
        "tensorflow": _version("tensorflow-cpu"),
        "keras": _version("keras"),
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _flags() -> frozenset[str]:
    from .precision import cpu_flags

    return cpu_flags()


@dataclass
class Entry:
    folder: Path  # <cache dir>/compiled/<key>

    @classmethod
    def under(cls, cache_dir: Path, name: str) -> Entry:
        return cls(cache_dir / "compiled" / name)

    def read(self) -> tuple[dict, object | None] | None:
        """(decisions, OpenVINO model or None), or None when there is no usable entry."""
        if not (self.folder / DECISIONS).is_file():
            return None
        try:
            decisions = json.loads((self.folder / DECISIONS).read_text())
            if not isinstance(decisions, dict) or decisions.get("runtime") not in (
                "openvino",
                "tensorflow",
            ):
                raise ValueError("decisions.json is not an entry's")
            model = None
            if decisions["runtime"] == "openvino":
                import openvino as ov

                model = ov.Core().read_model(self.folder / MODEL_XML)
            return decisions, model
        except Exception as exc:  # any damage: a truncated file, a foreign one, a bad IR
            logger.warning("compiled-model cache %s unusable (%s): loading cold", self.folder, exc)
            shutil.rmtree(self.folder, ignore_errors=True)
            return None

    def save(self, decisions: dict, model: object | None) -> None:
        """Write the entry whole, or leave none (a full disk only costs the next start time)."""
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.folder.parent))
            try:
                if model is not None:
                    import openvino as ov

                    # FP16 compression is OpenVINO's default: it would change the served values.
                    ov.save_model(model, staging / MODEL_XML, compress_to_fp16=False)
                (staging / DECISIONS).write_text(json.dumps(decisions, indent=1, sort_keys=True))
                if not self.folder.exists():  # else another replica wrote the same entry
                    os.rename(staging, self.folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            logger.warning("compiled-model cache %s not written: %s", self.folder, exc)

    def remember(self, **decisions: object) -> None:
        """Add decisions made after the entry was saved (the batch size, measured later)."""
        path = self.folder / DECISIONS
        try:
            current = json.loads(path.read_text())
            current.update(decisions)
            staged = path.with_suffix(".staging")
            staged.write_text(json.dumps(current, indent=1, sort_keys=True))
            os.replace(staged, path)
        except (OSError, ValueError) as exc:
            logger.warning("compiled-model cache %s not updated: %s", self.folder, exc)
