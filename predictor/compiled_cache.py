"""What a load decided, kept under MODEL_CACHE_DIR so the next start skips deciding it again.

A cold load imports TensorFlow, converts the model to OpenVINO, measures both runtimes and the
batch size, and for a reduced precision quantizes and judges it: ~30 s for the demo model, a
minute for VGG16. All of it depends only on the model file, the CPU, the thread count, the
options that chose it and the software that did it, so an entry is keyed by exactly those
(`key`; "software" includes the predictor's own sources). An entry holds the OpenVINO model
that is served (`model.xml` + `model.bin`, FP32 weights as converted, or as quantized) and
`decisions.json` (runtime, precision, the guard's verdicts, the batch size, each file's
SHA-256, checked before the files are used). A warm start reads them and compiles: no
TensorFlow, no conversion, no measuring.

Entries are written once, whole, to a temporary folder renamed into place, so a reader (another
replica on a shared volume, or this one after a crash) sees a whole entry or none, and are never
changed afterwards. A damaged entry is deleted and the load done cold; one that cannot be read
for now (an I/O error) is left alone and the load done cold.
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

from .sources.cache import sha256_of

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
        "code": _code_digest(),
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _code_digest() -> str:
    """The predictor's own sources: the guard, the quantizer's settings, the decoding and the
    measuring all shape an entry, so a new version of them decides again."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _flags() -> frozenset[str]:
    from .precision import cpu_flags

    return cpu_flags()


class Damaged(ValueError):
    """An entry that is not what `save` wrote: deleted, and the load done cold."""


STALE_STAGING_SECONDS = 3600  # a writer that crashed left it; no load takes this long


@dataclass
class Entry:
    folder: Path  # <cache dir>/compiled/<key>

    @classmethod
    def under(cls, cache_dir: Path, name: str) -> Entry:
        return cls(cache_dir / "compiled" / name)

    def read(self) -> tuple[dict, object | None] | None:
        """(decisions, OpenVINO model or None), or None when there is no usable entry. A
        damaged entry (unparsable, incomplete, or files whose SHA-256 is not the one saved)
        is deleted; one that cannot be read now (I/O error) is left for a later start."""
        if not (self.folder / DECISIONS).is_file():
            return None
        try:
            decisions = checked(json.loads((self.folder / DECISIONS).read_text()))
            model = None
            if decisions["runtime"] == "openvino":
                for name, digest in decisions["files"].items():
                    if sha256_of(self.folder / name) != digest:
                        raise Damaged(f"{name} is not the file saved")
                import openvino as ov

                model = ov.Core().read_model(self.folder / MODEL_XML)
            return decisions, model
        except (
            ValueError,
            KeyError,
            TypeError,
            FileNotFoundError,
        ) as exc:  # Damaged, JSON, a part missing
            self.discard(f"unusable ({exc})")
        except Exception as exc:  # an I/O error, or OpenVINO refusing the files
            logger.warning("compiled-model cache %s not read (%s): loading cold", self.folder, exc)
        return None

    def discard(self, why: str) -> None:
        logger.warning("compiled-model cache %s %s: deleted, loading cold", self.folder, why)
        shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, decisions: dict, model: object | None) -> None:
        """Write the entry whole, or leave none: any failure (a full disk, a read-only volume)
        only costs the next start its time."""
        staging = None
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_staging(self.folder.parent)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.folder.parent))
            files = {}
            if model is not None:
                import openvino as ov

                # FP16 compression is OpenVINO's default: it would change the served values.
                ov.save_model(model, staging / MODEL_XML, compress_to_fp16=False)
                files = {p.name: sha256_of(p) for p in sorted(staging.iterdir())}
            text = json.dumps({**decisions, "files": files}, indent=1, sort_keys=True)
            (staging / DECISIONS).write_text(text)
            if not self.folder.exists():  # else another replica wrote the same entry
                os.rename(staging, self.folder)
        except Exception as exc:
            logger.warning("compiled-model cache %s not written: %s", self.folder, exc)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def checked(decisions: object) -> dict:
    """The decisions as `save` wrote them, or Damaged."""
    if not isinstance(decisions, dict):
        raise Damaged("decisions.json is not an object")
    if decisions.get("runtime") not in ("openvino", "tensorflow"):
        raise Damaged("no runtime")
    if decisions.get("precision") not in ("fp32", "int8", "bf16"):
        raise Damaged("no precision")
    size = decisions.get("max_batch_size")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1024:
        raise Damaged("no batch size")
    files = decisions.get("files")
    if not isinstance(files, dict) or (decisions["runtime"] == "openvino") != (MODEL_XML in files):
        raise Damaged("no file list")
    verdicts = decisions.get("verdicts")
    fields = {"precision": str, "passed": bool, "agreement": float, "reason": str}
    if not isinstance(verdicts, list) or not all(
        isinstance(v, dict) and all(isinstance(v.get(f), t) for f, t in fields.items())
        for v in verdicts
    ):
        raise Damaged("malformed verdicts")
    return decisions


def _remove_stale_staging(folder: Path) -> None:
    import time

    for staging in folder.glob(".staging-*"):
        try:
            if time.time() - staging.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass
