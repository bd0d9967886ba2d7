"""The layer stack: each layer is a forward pass and its backward rules, side by side."""
# importing the layer modules registers their classes and rule cells: this order is the rule table's
# isort: off
from .activation import (
    GELU, Activation, Clamp, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, PReLU, ReLU, ReLU6, SiLU, Sigmoid, Softplus,
    Tanh,
)
from .adaptive import AdaptiveAvgPool2D, AdaptiveMaxPool2D
from .base import CORE_RULES, Layer, RuleNotDefined, deffact, defjvp, defrule, find_fact, find_rule, rule_table
from .graph import INPUT, Graph, GraphError, Sequential, Tape
from .conv import Conv2D
from .dense import Dense
from . import kinks as _kinks  # noqa: F401  (registers the kink finders)
from .merge import Add, Concat, Merge, Multiply
from .norm import BatchNorm2D, Dropout, fold_batchnorm, gradient_plan
from .pad import Pad2D, tf_same_padding
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from .reshape import Flatten, Identity
# isort: on

__all__ = [
    "Layer", "Graph", "GraphError", "Tape", "INPUT", "Sequential", "Add", "Concat", "Multiply", "Merge",
    "deffact", "find_fact", "find_rule", "RuleNotDefined", "defrule", "defjvp", "rule_table", "CORE_RULES",
    "Conv2D", "ReLU", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten", "Dense",
    "BatchNorm2D", "Dropout", "fold_batchnorm", "gradient_plan",
    "Activation", "ReLU6", "Hardtanh", "Clamp", "LeakyReLU", "PReLU", "Hardsigmoid", "Sigmoid", "Tanh", "SiLU",
    "Hardswish", "GELU", "Softplus", "Pad2D", "tf_same_padding", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D",
    "Identity",
]
