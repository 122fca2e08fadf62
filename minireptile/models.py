"""The paper's three networks (sine, Omniglot, Mini-ImageNet), built from the layers."""
from .layers import BatchNorm, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Tanh
from .net import Sequential


def sine_mlp(hidden=64):
    """The sine demo's regressor: 1 -> hidden -> hidden -> 1 with tanh."""
    return Sequential(Linear(1, hidden), Tanh(), Linear(hidden, hidden), Tanh(), Linear(hidden, 1))


def omniglot_net(ways=5, width=64, blocks=4, image_size=28, in_channels=1):
    """The paper's Omniglot classifier: blocks x [Conv 3x3 stride 2 padding 1, BatchNorm, ReLU],
    Flatten, Linear(width * s * s, ways), where s is the spatial size after the blocks
    (28 -> 14 -> 7 -> 4 -> 2, so Linear(256, ways) at the default width)."""
    layers, channels, size = [], in_channels, image_size
    for _ in range(blocks):
        layers += [Conv2d(channels, width, 3, stride=2, padding=1), BatchNorm(width), ReLU()]
        channels, size = width, (size + 1) // 2
    return Sequential(*layers, Flatten(), Linear(width * size * size, ways))


def miniimagenet_net(ways=5, width=32, blocks=4, image_size=84, in_channels=3):
    """The paper's Mini-ImageNet classifier: blocks x [Conv 3x3 padding 1, BatchNorm, ReLU,
    MaxPool 2x2], Flatten, Linear(width * s * s, ways), where s is the spatial size after the
    blocks: 84 -> 42 -> 21 -> 10 -> 5 (pooling 21 drops the last row and column), so
    Linear(800, ways) at the default width.

    (The authors' TensorFlow code pools before BatchNorm with "same" padding, 84 -> ... -> 6,
    and so has Linear(1152, ways); this is the network the paper describes.)
    """
    layers, channels, size = [], in_channels, image_size
    for _ in range(blocks):
        if size < 2:
            raise ValueError(f"miniimagenet_net: {image_size}x{image_size} images are too small "
                             f"for {blocks} blocks of 2x2 pooling")
        layers += [Conv2d(channels, width, 3, padding=1), BatchNorm(width), ReLU(), MaxPool2d(2)]
        channels, size = width, size // 2
    return Sequential(*layers, Flatten(), Linear(width * size * size, ways))
