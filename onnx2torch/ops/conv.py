"""Converters: convolutions (Conv, ConvTranspose, DeformConv).

Constant weights become native ``nn.Conv1d/2d/3d`` / ``nn.ConvTranspose1d/2d/3d`` layers with the
weights as parameters.  Padding torch cannot express in the layer (asymmetric pads, ``SAME_*`` on
inputs of unknown size, asymmetric transposed-conv crops) is done explicitly around the layer;
weights computed at run time use the functional forms below.
"""
from __future__ import annotations

import logging
import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.ops.padding import (
    Crop,
    SamePad,
    auto_pad_of,
    constant_pad_layer,
    explicit_pads,
    same_pads,
    spatial_attr,
    torch_pad,
)
from onnx2torch.registry import Lowered, converter

__all__ = [
    "conv",
    "conv_transpose",
    "deform_conv",
    "deform_conv_nd",
    "onnx_conv",
    "onnx_conv_transpose",
    "transpose_crops",
]

logger = logging.getLogger(__name__)

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_TRANSPOSE = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


# --- run-time forms -----------------------------------------------------------------------------
def onnx_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
              strides: tuple[int, ...], dilations: tuple[int, ...], group: int,
              pads: tuple[int, ...] | None = None, auto_pad: str = "NOTSET") -> torch.Tensor:
    """ONNX Conv with explicit (possibly asymmetric) ``pads`` or ``SAME_*`` padding from run-time sizes."""
    rank = weight.dim() - 2
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(x.shape[2:], weight.shape[2:], strides, dilations):
            b, e = same_pads(size, k, s, d, auto_pad == "SAME_LOWER")
            begin.append(b)
            end.append(e)
    else:
        pads = pads or (0,) * (2 * rank)
        begin, end = pads[:rank], pads[rank:]
    if any(p != 0 for p in (*begin, *end)):
        x = F.pad(x, torch_pad(begin, end))
    return _CONV_FN[rank](x, weight, bias, strides, 0, dilations, group)


def transpose_crops(total, same_upper: bool):
    """``(begin, end)`` crop of a transposed convolution's full output from its total padding.

    A negative ``total`` (the requested output is longer than what the kernel reaches) becomes a
    negative ``end``: that many zero (+bias) elements are appended, as onnxruntime does.
    """
    # NOTE: ConvTranspose-11 spec: SAME_UPPER -> pads[start] = total // 2, pads[end] = the rest;
    # otherwise the extra element goes to the start.  ConvTranspose-1's text writes the opposite
    # split, but its own auto_pad description and onnxruntime (at every opset) follow this one.
    clamped = torch.sym_max(total, 0)
    begin = clamped // 2 if same_upper else clamped - clamped // 2
    return begin, total - begin


def onnx_conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                        strides: tuple[int, ...], dilations: tuple[int, ...], group: int,
                        output_padding: tuple[int, ...], pads: tuple[int, ...] | None = None,
                        output_shape: tuple[int, ...] | None = None,
                        auto_pad: str = "NOTSET") -> torch.Tensor:
    """ONNX ConvTranspose: full transposed convolution, then the crop (or zero extension) that
    ``pads`` / ``output_shape`` / ``auto_pad`` select, then the bias."""
    rank = weight.dim() - 2
    y = _CONV_TRANSPOSE_FN[rank](x, weight, None, strides, 0, 0, group, dilations)
    begin, end = [], []
    for i in range(rank):
        size, k, s, d, adj = x.shape[2 + i], weight.shape[2 + i], strides[i], dilations[i], output_padding[i]
        full = (size - 1) * s + (k - 1) * d + 1 + adj
        if output_shape is not None:
            b, e = transpose_crops(full - output_shape[i], auto_pad == "SAME_UPPER")
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            b, e = transpose_crops(full - size * s, auto_pad == "SAME_UPPER")
        elif pads is not None:
            b, e = pads[i], pads[rank + i]
        else:
            b, e = 0, 0
        begin.append(b)
        end.append(e - adj)  # output_padding extends the end
    y = F.pad(y, torch_pad([-b for b in begin], [-e for e in end]))
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * rank)
    return y


# --- helpers ------------------------------------------------------------------------------------
def _spatial_rank(node: OnnxNode, ctx: ConversionContext, weight: torch.Tensor | None) -> int:
    if weight is not None:
        rank = weight.dim() - 2
    elif ctx.rank(node.input(1)) is not None:
        rank = ctx.rank(node.input(1)) - 2
    elif ctx.rank(node.input(0)) is not None:
        rank = ctx.rank(node.input(0)) - 2
    elif node.attr_ints("kernel_shape", None):
        rank = len(node.attr_ints("kernel_shape"))
    else:
        raise node.unsupported("input rank", None, "inputs whose rank is known at conversion time")
    if rank not in (1, 2, 3):
        raise node.unsupported("spatial rank", rank, "1, 2 or 3 (torch has Conv1d/2d/3d only)")
    return rank


def _kernel_shape(node: OnnxNode, ctx: ConversionContext, rank: int) -> list[int] | None:
    """The kernel's spatial size from W (or ``kernel_shape``); ``None`` when unknown."""
    attr = node.attr_ints("kernel_shape", None)
    dims = ctx.shape(node.input(1))
    from_weight = None
    if dims is not None and all(isinstance(d, int) for d in dims[2:]):
        from_weight = list(dims[2:])
    if attr and from_weight is not None and list(attr) != from_weight:
        raise node.unsupported("kernel_shape", attr, f"the weight's spatial shape {from_weight}")
    if attr and len(attr) != rank:
        raise node.unsupported("kernel_shape", attr, f"{rank} values")
    return from_weight if from_weight is not None else (list(attr) if attr else None)


def _static_spatial(ctx: ConversionContext, name: str) -> list[int] | None:
    dims = ctx.shape(name)
    if dims is None or not all(isinstance(d, int) for d in dims[2:]):
        return None
    return list(dims[2:])


def _new_layer(cls: type[nn.Module], node: OnnxNode, ctx: ConversionContext, weight: torch.Tensor,
               bias: torch.Tensor | None, **kwargs) -> nn.Module:
    """A conv layer built without random init, holding ``weight`` / ``bias`` (the node's W and B)
    as its own (``ctx.own``: the constant's memory when nothing else reads it, else a copy)."""
    # NOTE: built on the meta device: no random init, and no storage allocated only to be replaced.
    layer = cls(bias=bias is not None, dtype=weight.dtype, device="meta", **kwargs)
    layer.weight = nn.Parameter(ctx.own(weight, node.input(1)))
    if bias is not None:
        layer.bias = nn.Parameter(ctx.own(bias, node.input(2)) if bias.dtype == weight.dtype
                                  else bias.detach().to(weight.dtype))
    return layer


def _constant_weights(node: OnnxNode, ctx: ConversionContext):
    """``(weight, bias, has_bias)``: W and B when every given one is constant, else ``None``s."""
    weight = ctx.constant(node.input(1))
    has_bias = node.has_input(2)
    bias = ctx.constant(node.input(2)) if has_bias else None
    if weight is None or (has_bias and bias is None) or not weight.is_floating_point():
        return None, None, has_bias
    return weight, bias, has_bias


# --- Conv ---------------------------------------------------------------------------------------
@converter("Conv", since=1)
def conv(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Conv(X, W, B?) -> Y = X (*) W + B, with group / strides / dilations / pads / auto_pad."""
    weight, bias, has_bias = _constant_weights(node, ctx)
    rank = _spatial_rank(node, ctx, weight)
    strides = spatial_attr(node, "strides", rank, 1)
    dilations = spatial_attr(node, "dilations", rank, 1)
    group = node.attr_int("group", 1)
    auto_pad = auto_pad_of(node)
    kernel = _kernel_shape(node, ctx, rank)
    if group < 1:
        raise node.unsupported("group", group, "a positive number of groups")

    begin, end = explicit_pads(node, rank)
    if auto_pad == "VALID":
        begin, end = [0] * rank, [0] * rank
    static_pads = auto_pad in ("NOTSET", "VALID")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        sizes = _static_spatial(ctx, node.input(0))
        if sizes is not None and kernel is not None:
            pairs = [same_pads(n, k, s, d, auto_pad == "SAME_LOWER")
                     for n, k, s, d in zip(sizes, kernel, strides, dilations)]
            begin, end = [b for b, _ in pairs], [e for _, e in pairs]
            static_pads = True

    if weight is not None:
        layer_kwargs = dict(in_channels=weight.shape[1] * group, out_channels=weight.shape[0],
                            kernel_size=tuple(kernel), stride=tuple(strides), dilation=tuple(dilations),
                            groups=group)
        if static_pads and begin == end:
            return Lowered(_new_layer(_CONV[rank], node, ctx, weight, bias, padding=tuple(begin), **layer_kwargs),
                           inputs=[node.input(0)])
        layer = _new_layer(_CONV[rank], node, ctx, weight, bias, padding=0, **layer_kwargs)
        if static_pads:
            pad = constant_pad_layer(begin, end, 0.0)
        else:
            pad = SamePad(kernel, strides, dilations, auto_pad == "SAME_LOWER")
        return Lowered(nn.Sequential(pad, layer), inputs=[node.input(0)])

    inputs = [node.input(0), node.input(1), node.input(2) if has_bias else ""]
    if static_pads and begin == end:
        return Lowered(_CONV_FN[rank], inputs=inputs,
                       kwargs=dict(stride=tuple(strides), padding=tuple(begin),
                                   dilation=tuple(dilations), groups=group))
    kwargs = dict(strides=tuple(strides), dilations=tuple(dilations), group=group)
    if static_pads:
        kwargs["pads"] = tuple(begin + end)
    else:
        kwargs["auto_pad"] = auto_pad
    return Lowered(onnx_conv, inputs=inputs, kwargs=kwargs)


# --- ConvTranspose ------------------------------------------------------------------------------
@converter("ConvTranspose", since=1)
def conv_transpose(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """ConvTranspose(X, W, B?) -> Y, with group / strides / dilations / pads / output_padding /
    output_shape / auto_pad."""
    weight, bias, has_bias = _constant_weights(node, ctx)
    rank = _spatial_rank(node, ctx, weight)
    strides = spatial_attr(node, "strides", rank, 1)
    dilations = spatial_attr(node, "dilations", rank, 1)
    output_padding = spatial_attr(node, "output_padding", rank, 0)
    group = node.attr_int("group", 1)
    auto_pad = auto_pad_of(node)
    kernel = _kernel_shape(node, ctx, rank)
    if group < 1:
        raise node.unsupported("group", group, "a positive number of groups")
    output_shape = node.attr_ints("output_shape", None) or None
    if output_shape is not None:
        if len(output_shape) == rank + 2:  # some exporters write N and C too
            output_shape = output_shape[2:]
        if len(output_shape) != rank:
            raise node.unsupported("output_shape", output_shape, f"{rank} spatial sizes")
    if any(p < 0 for p in output_padding):
        raise node.unsupported("output_padding", output_padding, "values >= 0")

    # Crops of the full output ((in - 1) * stride + dilated kernel + output_padding long):
    # begin[i] leading elements, end[i] trailing ones (negative: zeros appended).
    begin, end = explicit_pads(node, rank)
    if auto_pad == "VALID":
        begin, end = [0] * rank, [0] * rank
    static = True
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        sizes = _static_spatial(ctx, node.input(0))
        if kernel is None or (output_shape is not None and sizes is None):
            static = False
        else:
            begin, end = [], []
            for i in range(rank):
                effective = (kernel[i] - 1) * dilations[i] + 1 + output_padding[i]
                if output_shape is not None:
                    total = (sizes[i] - 1) * strides[i] + effective - output_shape[i]
                else:  # output = input * stride, whatever the input size
                    total = effective - strides[i]
                b, e = transpose_crops(total, auto_pad == "SAME_UPPER")
                begin.append(b)
                end.append(e)

    if static and weight is not None:
        # torch's ConvTranspose crops `padding` from both sides and then appends output_padding.
        padding = [max(0, min(b, e)) for b, e in zip(begin, end)]
        adjust = [max(0, adj - e + p) for adj, e, p in zip(output_padding, end, padding)]
        if all(a < max(s, d) for a, s, d in zip(adjust, strides, dilations)):
            layer = _new_layer(_CONV_TRANSPOSE[rank], node, ctx, weight, bias,
                               in_channels=weight.shape[0], out_channels=weight.shape[1] * group,
                               kernel_size=tuple(kernel), stride=tuple(strides), padding=tuple(padding),
                               output_padding=tuple(adjust), groups=group, dilation=tuple(dilations))
            crop_begin = [b - p for b, p in zip(begin, padding)]
            crop_end = [a - p - adj + e for a, p, adj, e in zip(adjust, padding, output_padding, end)]
            if not any(crop_begin) and not any(crop_end):
                return Lowered(layer, inputs=[node.input(0)])
            return Lowered(nn.Sequential(layer, Crop(crop_begin, crop_end)), inputs=[node.input(0)])

    inputs = [node.input(0), node.input(1), node.input(2) if has_bias else ""]
    if (static and begin == end and all(b >= 0 for b in begin)
            and all(a < max(s, d) for a, s, d in zip(output_padding, strides, dilations))):
        return Lowered(_CONV_TRANSPOSE_FN[rank], inputs=inputs,
                       kwargs=dict(stride=tuple(strides), padding=tuple(begin),
                                   output_padding=tuple(output_padding), groups=group,
                                   dilation=tuple(dilations)))
    kwargs = dict(strides=tuple(strides), dilations=tuple(dilations), group=group,
                  output_padding=tuple(output_padding))
    if static:
        kwargs["pads"] = tuple(begin + end)
    else:
        if output_shape is not None:
            kwargs["output_shape"] = tuple(output_shape)
        kwargs["auto_pad"] = auto_pad
    return Lowered(onnx_conv_transpose, inputs=inputs, kwargs=kwargs)


# --- DeformConv ---------------------------------------------------------------------------------
def _bilinear_gather(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``image`` (B, C, H, W) at float positions ``ys``/``xs`` (B, ...), zero
    outside the image; returns (B, C, ...)."""
    height, width = image.shape[-2], image.shape[-1]
    y0 = torch.floor(ys)
    x0 = torch.floor(xs)
    result = None
    flat = image.flatten(2)  # B, C, H*W
    for dy in (0, 1):
        for dx in (0, 1):
            yi = y0 + dy
            xi = x0 + dx
            weight = (1 - (ys - yi).abs()) * (1 - (xs - xi).abs())
            inside = (yi >= 0) & (yi <= height - 1) & (xi >= 0) & (xi <= width - 1)
            weight = torch.where(inside, weight, torch.zeros_like(weight))
            index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long()
            gathered = torch.gather(flat, 2, index.flatten(1).unsqueeze(1).expand(-1, flat.shape[1], -1))
            term = gathered.reshape(flat.shape[:2] + ys.shape[1:]) * weight.unsqueeze(1)
            result = term if result is None else result + term
    return result


def deform_conv_nd(x: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor,
                   bias: torch.Tensor | None = None, mask: torch.Tensor | None = None, *,
                   strides: tuple[int, int], dilations: tuple[int, int], pads: tuple[int, int, int, int],
                   group: int, offset_group: int) -> torch.Tensor:
    """ONNX DeformConv (2-D): each kernel tap samples X bilinearly at its offset position, scaled by
    the mask, then the taps are contracted with W like a grouped convolution."""
    batch, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h, out_w = offset.shape[-2], offset.shape[-1]
    taps = kh * kw
    # Base sampling positions: output position * stride - pad_begin + tap * dilation.
    oy = torch.arange(out_h, dtype=x.dtype, device=x.device) * strides[0] - pads[0]
    ox = torch.arange(out_w, dtype=x.dtype, device=x.device) * strides[1] - pads[1]
    ty = torch.arange(kh, dtype=x.dtype, device=x.device).repeat_interleave(kw) * dilations[0]
    tx = torch.arange(kw, dtype=x.dtype, device=x.device).repeat(kh) * dilations[1]
    base_y = ty.reshape(taps, 1, 1) + oy.reshape(1, out_h, 1)
    base_x = tx.reshape(taps, 1, 1) + ox.reshape(1, 1, out_w)
    # NOTE: ONNX DeformConv: offset holds (dy, dx) pairs per tap, offset_group-major:
    # shape (N, offset_group * kH * kW * 2, oH, oW).
    offset = offset.reshape(batch, offset_group, taps, 2, out_h, out_w)
    ys = (base_y + offset[:, :, :, 0]).reshape(batch * offset_group, taps, out_h, out_w)
    xs = (base_x + offset[:, :, :, 1]).reshape(batch * offset_group, taps, out_h, out_w)
    image = x.reshape(batch * offset_group, channels // offset_group, height, width)
    sampled = _bilinear_gather(image, ys, xs)  # B*G, C/G, taps, oH, oW
    sampled = sampled.reshape(batch, offset_group, channels // offset_group, taps, out_h, out_w)
    if mask is not None:
        sampled = sampled * mask.reshape(batch, offset_group, 1, taps, out_h, out_w)
    columns = sampled.reshape(batch, group, channels // group * taps, out_h * out_w)
    kernels = weight.reshape(group, out_channels // group, channels // group * taps)
    y = torch.einsum("gok,bgkp->bgop", kernels, columns).reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


@converter("DeformConv", since=19)
def deform_conv(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """DeformConv(X, W, offset, B?, mask?) -> Y, deformable 2-D convolution."""
    rank = ctx.rank(node.input(0)) or ctx.rank(node.input(1))
    if rank != 4:
        raise node.unsupported("input rank", rank, "4 (2-D deformable convolution)")
    _kernel_shape(node, ctx, 2)  # validates kernel_shape against W
    # NOTE: the output size is the offset tensor's spatial size (the spec requires it to match
    # the convolution arithmetic), so only the leading pads move the sampling grid.
    begin, end = explicit_pads(node, 2)
    inputs = [node.input(i) for i in range(5)]
    return Lowered(deform_conv_nd, inputs=inputs,
                   kwargs=dict(strides=tuple(spatial_attr(node, "strides", 2, 1)),
                               dilations=tuple(spatial_attr(node, "dilations", 2, 1)),
                               pads=tuple(begin + end), group=node.attr_int("group", 1),
                               offset_group=node.attr_int("offset_group", 1)))
