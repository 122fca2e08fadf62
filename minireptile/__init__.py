"""minireptile: Reptile, first-order and exact MAML, with hand-written backprop in NumPy."""
from ._malloc import tune_malloc
from .gradcheck import check_gradient, check_layer, numerical_gradient, rel_error
from .layers import BatchNorm, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, Tanh
from .losses import accuracy, mse, softmax_cross_entropy
from .models import omniglot_net, sine_mlp
from .net import Sequential
from .params import ParamSpec

__version__ = "0.1.0"

tune_malloc()
