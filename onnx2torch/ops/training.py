"""Converters for the ai.onnx.preview.training optimizers: Adagrad, Adam, Momentum.

Each takes a learning rate R, a step count T and groups of tensors (weights, gradients, state)
and returns the updated weights and state, as the spec's update rules define.
"""
from __future__ import annotations

import logging

import torch

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.registry import Lowered, converter

__all__ = ["adagrad", "adam", "momentum"]

logger = logging.getLogger(__name__)

TRAINING = "ai.onnx.preview.training"


def _groups(tensors: tuple, count: int) -> list[tuple]:
    n = len(tensors) // count
    return [tuple(tensors[k * n + i] for k in range(count)) for i in range(n)]


def adagrad_update(r, t, *tensors, decay_factor: float, epsilon: float, norm_coefficient: float):
    """Adagrad: (X..., G..., H...) -> (X_new..., H_new...)"""
    rate = r / (1 + t * decay_factor)
    xs, hs = [], []
    for x, g, h in _groups(tensors, 3):
        g_reg = norm_coefficient * x + g
        h_new = h + g_reg * g_reg
        xs.append((x - rate * g_reg / (torch.sqrt(h_new) + epsilon)).to(x.dtype))
        hs.append(h_new.to(h.dtype))
    return tuple(xs + hs)


@converter("Adagrad", since=1, domain=TRAINING)
def adagrad(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Adagrad(R, T, inputs...) -> outputs...; attrs decay_factor, epsilon, norm_coefficient"""
    return Lowered(adagrad_update, kwargs={"decay_factor": node.attr_float("decay_factor"),
                                           "epsilon": node.attr_float("epsilon"),
                                           "norm_coefficient": node.attr_float("norm_coefficient")})


def adam_update(r, t, *tensors, alpha: float, beta: float, epsilon: float, norm_coefficient: float,
                norm_coefficient_post: float):
    """Adam: (X..., G..., V..., H...) -> (X_new..., V_new..., H_new...)"""
    step = float(t)
    rate = r * ((1 - beta ** step) ** 0.5) / (1 - alpha ** step) if step > 0 else r
    xs, vs, hs = [], [], []
    for x, g, v, h in _groups(tensors, 4):
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + (1 - alpha) * g_reg
        h_new = beta * h + (1 - beta) * g_reg * g_reg
        x_new = x - rate * (v_new / (torch.sqrt(h_new) + epsilon))
        xs.append(((1 - norm_coefficient_post) * x_new).to(x.dtype))
        vs.append(v_new.to(v.dtype))
        hs.append(h_new.to(h.dtype))
    return tuple(xs + vs + hs)


@converter("Adam", since=1, domain=TRAINING)
def adam(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Adam(R, T, inputs...) -> outputs...; attrs alpha, beta, epsilon, norm_coefficient(_post)"""
    return Lowered(adam_update, kwargs={"alpha": node.attr_float("alpha"), "beta": node.attr_float("beta"),
                                        "epsilon": node.attr_float("epsilon"),
                                        "norm_coefficient": node.attr_float("norm_coefficient"),
                                        "norm_coefficient_post": node.attr_float("norm_coefficient_post")})


def momentum_update(r, t, *tensors, alpha: float, beta: float, norm_coefficient: float, nesterov: bool):
    """Momentum: (X..., G..., V...) -> (X_new..., V_new...); standard or Nesterov"""
    beta_t = beta if float(t) > 0 else 1.0  # NOTE: the gradient's coefficient is 1 at step 0
    xs, vs = [], []
    for x, g, v in _groups(tensors, 3):
        g_reg = norm_coefficient * x + g
        v_new = alpha * v + beta_t * g_reg
        x_new = x - r * (g_reg + alpha * v_new) if nesterov else x - r * v_new
        xs.append(x_new.to(x.dtype))
        vs.append(v_new.to(v.dtype))
    return tuple(xs + vs)


@converter("Momentum", since=1, domain=TRAINING)
def momentum(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Momentum(R, T, inputs...) -> outputs...; attrs alpha, beta, mode, norm_coefficient"""
    mode = node.attr_str("mode")
    if mode not in ("standard", "nesterov"):
        raise node.unsupported("mode", mode, "standard, nesterov")
    return Lowered(momentum_update, kwargs={"alpha": node.attr_float("alpha"), "beta": node.attr_float("beta"),
                                            "norm_coefficient": node.attr_float("norm_coefficient"),
                                            "nesterov": mode == "nesterov"})
