"""KServe's data plane as both doors use it: the extensions advertised, server readiness, and
the one lookup of "the model by this name, serving this version" that REST and gRPC share."""

from __future__ import annotations

from typing import cast

from kserve.protocol.dataplane import DataPlane

from .. import kserve_glue
from ..model import CatsDogsOtherModel
from . import codec

# What `/v2` and `ServerMetadata` advertise: the binary tensor extension (REST binary data, gRPC
# raw contents) and classification (`outputs.py`), both on both protocols. Not KServe's
# `model_repository_extension`: it is not served.
EXTENSIONS = ("binary_tensor_data", "classification")


NO_MODEL = "no model is loaded"


class PredictorDataPlane(DataPlane):
    def metadata(self) -> dict:
        return {**super().metadata(), "extensions": list(EXTENSIONS)}

    async def ready(self) -> bool:
        """Server readiness, for REST `/v2/health/ready` and gRPC `ServerReady` alike: ready
        when every registered model is loaded and warmed up, and at least one is registered.
        kserve 0.21 answers true whatever the models' state."""
        return not await self.not_ready()

    async def not_ready(self) -> str:
        """Why the server is not ready: the models still loading, by name, or that none is
        registered; "" once it is ready."""
        names = list(kserve_glue.registered_models(self))
        if not names:
            return NO_MODEL
        waiting = [name for name in names if not await kserve_glue.is_model_ready(self, name)]
        return ", ".join(waiting)

    def decode(self, body, headers, *args, **kwargs):
        """KServe's V1 route parses its JSON body here: bounded first, by its structure (a
        V1 body is a few objects per image around base64 text; `[[],[],...]` would cost 24
        bytes of Python objects per byte sent)."""
        if isinstance(body, bytes | bytearray):
            models = list(kserve_glue.registered_models(self).values())
            most = max((getattr(m, "max_images", 0) for m in models), default=0)
            codec.check_v1_structure(bytes(body), most)
        return super().decode(body, headers, *args, **kwargs)

    def model_serving(self, name: str, version: str | None = None) -> CatsDogsOtherModel:
        """The model by name (ModelNotFound: 404 / NOT_FOUND), serving `version` if one is
        named (NoSuchVersion: 404 / NOT_FOUND; ModelNotReady while it loads)."""
        model = cast(CatsDogsOtherModel, kserve_glue.model_from_registry(self, name))
        model.check_version(version)
        return model
