"""The course's FastAPI app, rebuilt from ../shared/CONTRACT.md as the baseline to beat: one
`model.predict` per `/upload`, on the event loop, as the course serves it.

    python -m bench.course_app MODEL.keras PORT
"""

from __future__ import annotations

import io
import sys

import keras
import numpy as np
import uvicorn
from fastapi import FastAPI, File, UploadFile

LABELS = ["Cat", "Dog", "Other"]


def create_app(model_path: str) -> FastAPI:
    model = keras.models.load_model(model_path)
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "OK"}

    @app.post("/upload")
    async def upload(file: UploadFile = File(...)):  # noqa: B008 (the course's code)
        data = await file.read()
        image = keras.utils.load_img(io.BytesIO(data), target_size=(224, 224))
        tensor = keras.utils.img_to_array(image) - [123.68, 116.779, 103.939]
        values = model.predict(np.expand_dims(tensor, 0))[0]
        return {"prediction": LABELS[int(np.argmax(values))], "values": values.tolist()}

    return app


if __name__ == "__main__":
    uvicorn.run(
        create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning"
    )
