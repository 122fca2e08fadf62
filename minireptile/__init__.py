"""minireptile: Reptile, first-order and exact MAML, with hand-written backprop in NumPy."""
from ._malloc import tune_malloc
from ._program import own_process
from .gradcheck import check_gradient, numerical_gradient, rel_error
from .inner import AdamState, inner_adam, inner_sgd
from .layers import BatchNorm, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, Tanh
from .losses import accuracy, mse, softmax_cross_entropy
from .meta import meta_gradient
from .models import miniimagenet_net, omniglot_net, sine_mlp
from .net import Sequential
from .params import ParamSpec
from .testing import check_layer, check_net
from .train import TrainConfig, TrainResult, load_theta, meta_train

__version__ = "0.1.0"
