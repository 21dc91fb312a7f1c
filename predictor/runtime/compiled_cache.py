"""What a load decided, kept under MODEL_CACHE_DIR so the next start skips deciding it again.

A cold load imports TensorFlow, converts the model to OpenVINO, measures both runtimes and the
batch size, and for a reduced precision quantizes and judges it: ~30 s for the demo model, a
minute for VGG16. All of it depends only on the model file, the CPU, the thread count, the
options that chose it and the software that did it, so an entry is keyed by exactly those
(cache_key.py; "software" includes the predictor's code that decides). An entry holds the
OpenVINO model that is served (`model.xml` + `model.bin`, FP32 weights as converted, or as
quantized) and `decisions.json` (the `Decisions` of decisions.py: runtime, precision, the
guard's verdicts, the batch size; beside them each file's SHA-256, checked before the files are
used). A warm start reads them and compiles: no TensorFlow, no conversion, no measuring.

Entries are written once, whole, to a temporary folder renamed into place, so a reader (another
replica on a shared volume, or this one after a crash) sees a whole entry or none, and are never
changed afterwards. A damaged entry is deleted and the load done cold; one that cannot be read
for now (an I/O error) is left alone and the load done cold.

The cache is a trust boundary: whoever can write it chooses the model served (the digests in
`decisions.json` catch damage, not someone who rewrites them too). What a reader can still
refuse is anything `save` would never write, before reading it: an entry is a real folder that
holds exactly `decisions.json` and, for OpenVINO, `model.xml` and `model.bin`, each a regular
file (lstat: no link, FIFO or device is followed or opened, so nothing blocks or reads without
end) within a size cap (`MOST_BYTES`); and the OpenVINO model read from it must have the
contract's shape (one float input [N, 224, 224, 3], one float output [N, 3]) before it is
compiled, as runtimes.py checks a Keras model's. Anything else: deleted, one warning, load cold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..contract import LABELS, PIXELS_SHAPE
from ..sources.cache import read_capped, sha256_of
from .base import first_line
from .decisions import Decisions

logger = logging.getLogger(__name__)

DECISIONS = "decisions.json"
MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
# What an entry holds, by runtime: these names and no other.
FILES = {
    "openvino": frozenset({DECISIONS, MODEL_XML, MODEL_BIN}),
    "tensorflow": frozenset({DECISIONS}),
}
# Caps on what a reader reads, far above what `save` writes: decisions.json is ~1 KB; a model's
# XML is its graph (tens of KB for VGG16, a few hundred for EfficientNet); model.bin is its FP32
# weights, 528 MB for VGG16, the largest model the course trains: 4 GiB leaves it 8x, and a
# model past that does not fit a predictor's memory anyway.
MOST_BYTES = {DECISIONS: 1 << 20, MODEL_XML: 64 << 20, MODEL_BIN: 4 << 30}


class Damaged(ValueError):
    """An entry that is not what `save` wrote: deleted, and the load done cold."""


STALE_STAGING_SECONDS = 3600  # a writer that crashed left it; no load takes this long


@dataclass(frozen=True)
class Cached:
    """A usable entry, read: its decisions, and the OpenVINO model it holds (None when
    TensorFlow serves: the load opens the model file again)."""

    decisions: Decisions
    model: object | None


@dataclass
class Entry:
    folder: Path  # <cache dir>/compiled/<key>

    @classmethod
    def under(cls, cache_dir: Path, name: str) -> Entry:
        return cls(cache_dir / "compiled" / name)

    def read(self) -> Cached | None:
        """The entry's decisions and model, or None when there is no usable entry. A
        damaged entry (unparsable, incomplete, holding anything `save` does not write, files
        whose SHA-256 is not the one saved, a model not of the contract's shape) is deleted;
        one that cannot be read now (I/O error) is left for a later start."""
        try:
            kind = os.lstat(self.folder).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("compiled-model cache %s not read (%s): loading cold", self.folder, exc)
            return None
        try:
            return self._checked(kind)
        except (
            ValueError,
            KeyError,
            TypeError,
            FileNotFoundError,
            RecursionError,
        ) as exc:  # Damaged, InvalidDecisions, JSON (nested past the recursion limit), a part gone
            self.discard(f"unusable ({exc})")
        except Exception as exc:  # an I/O error
            logger.warning("compiled-model cache %s not read (%s): loading cold", self.folder, exc)
        return None

    def _checked(self, kind: int) -> Cached:
        """The entry as `save` wrote it (`kind`: its folder's mode, by lstat), or an exception
        saying what is not: each check before anything it protects is opened."""
        if not stat.S_ISDIR(kind):
            raise Damaged("the entry is not a folder (a link, or a file)")
        names = listed(self.folder)
        regular_file(self.folder, DECISIONS)
        saved = json.loads(read_capped(self.folder / DECISIONS, MOST_BYTES[DECISIONS]))
        decisions = Decisions.from_json(saved)
        files = file_digests(saved, decisions.runtime)
        if extra := names - FILES[decisions.runtime]:
            runtime = decisions.runtime
            raise Damaged(f"holds {sorted(extra)[0]!r}, which a {runtime} entry does not")
        if decisions.runtime != "openvino":
            return Cached(decisions, None)
        for name, digest in sorted(files.items()):
            regular_file(self.folder, name)
            if sha256_of(self.folder / name, MOST_BYTES[name]) != digest:
                raise Damaged(f"{name} is not the file saved")
        return Cached(decisions, read_openvino(self.folder / MODEL_XML))

    def discard(self, why: str) -> None:
        logger.warning("compiled-model cache %s %s: deleted, loading cold", self.folder, why)
        if self.folder.is_symlink() or not self.folder.is_dir():
            with contextlib.suppress(OSError):
                self.folder.unlink()  # the link, not what it points at
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, decisions: Decisions, model: object | None) -> None:
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
                if set(files) | {DECISIONS} != FILES["openvino"]:  # read() would refuse it
                    raise Damaged(f"OpenVINO wrote {sorted(files)}, not {MODEL_XML} + {MODEL_BIN}")
            text = json.dumps({**decisions.to_json(), "files": files}, indent=1, sort_keys=True)
            (staging / DECISIONS).write_text(text)
            if not self.folder.exists():  # else another replica wrote the same entry
                os.rename(staging, self.folder)
        except Exception as exc:
            logger.warning("compiled-model cache %s not written: %s", self.folder, exc)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def file_digests(saved: dict, runtime: str) -> dict[str, str]:
    """The SHA-256 of each file beside decisions.json, as `save` wrote them (the files of the
    entry's runtime, no other name), or Damaged."""
    files = saved.get("files")
    if not isinstance(files, dict) or set(files) != FILES[runtime] - {DECISIONS}:
        raise Damaged("no file list (or not the files of its runtime)")
    if not all(isinstance(digest, str) for digest in files.values()):
        raise Damaged("malformed file list")
    return files


def _remove_stale_staging(folder: Path) -> None:
    import time

    for staging in folder.glob(".staging-*"):
        try:
            if time.time() - staging.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass


def listed(folder: Path) -> set[str]:
    """The names in an entry's folder, refusing any that `save` never writes (a name in
    decisions.json is only ever one of these: never `/dev/zero`, `../x` or a path)."""
    names = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name not in FILES["openvino"]:
                raise Damaged(f"holds {entry.name!r}, which no entry holds")
            names.add(entry.name)
    return names


def regular_file(folder: Path, name: str) -> None:
    """`name` in `folder` is a regular file within its cap, by lstat: nothing is opened or
    followed to tell (a FIFO would block the open, a link could lead to /dev/zero)."""
    if name not in MOST_BYTES:
        raise Damaged(f"names {name!r}, which no entry holds")
    info = os.lstat(folder / name)  # FileNotFoundError: incomplete
    if not stat.S_ISREG(info.st_mode):
        what = "a link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise Damaged(f"{name} is {what}")
    if info.st_size > MOST_BYTES[name]:
        raise Damaged(f"{name} is {info.st_size} bytes, over the cap of {MOST_BYTES[name]}")


def read_openvino(xml: Path):
    """The OpenVINO model of an entry whose files were checked, if it has the contract's shape.
    OpenVINO refusing files whose digests are the saved ones is damage too: no later start
    would read them either, and a kept entry is never written again."""
    import openvino as ov

    try:
        model = ov.Core().read_model(xml)
    except RuntimeError as exc:
        raise Damaged(f"not an OpenVINO model ({first_line(exc)})") from None
    if problem := contract_problem(model):
        raise Damaged(problem)
    return model


def contract_problem(model) -> str:
    """Why an OpenVINO model is not the contract's (contract.py), or "": one float32 input
    [N, 224, 224, 3] and one float32 output [N, 3], N any batch size. The server sends batches
    of every size and reads three values per image: any other model would be served wrong."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        return (
            f"the model has {len(inputs)} input(s) and {len(outputs)} output(s); "
            "the contract is one of each"
        )
    wanted = {
        "input": (inputs[0], PIXELS_SHAPE),
        "output": (outputs[0], (len(LABELS),)),
    }
    for what, (port, shape) in wanted.items():
        partial = port.get_partial_shape()
        dims = (
            [d.get_length() if d.is_static else -1 for d in partial]
            if partial.rank.is_static
            else []
        )
        element = port.get_element_type().get_type_name()
        if dims != [-1, *shape] or element != "f32":
            expected = ", ".join(map(str, shape))
            return f"the model's {what} is {element} {partial}; the contract is f32 [?, {expected}]"
    return ""
