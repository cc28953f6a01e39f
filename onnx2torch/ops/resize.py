"""Converters: Resize (opsets 10, 11-19) and Upsample (opsets 7, 9).

Every case runs through one algorithm that follows the ONNX spec per axis: compute the source
coordinate of each output index (``coordinate_transformation_mode``), then gather the input
along that axis and blend the taps (nearest / linear / cubic, antialias, ``exclude_outside``).
Resampling is separable, so an N-D resize is one such 1-D pass per resized axis.

``torch.nn.Upsample`` / ``F.interpolate`` is used only where it computes the same thing:
``nearest`` when every scale is a power of two whose index map is provably ``i // scale``, and
``(bi|tri)linear`` / ``bicubic`` (a = -0.75, no ``exclude_outside``) with ``half_pixel``-like or
``align_corners`` coordinates on the trailing spatial axes, with antialias only where it does
not apply (no downscaling).

Where the spec leaves arithmetic open, this follows onnxruntime: output sizes and coordinates
are float32 expressions in its order, ``align_corners`` divides by the integer output length
(as the spec's text says; onnx's reference uses the fractional one), and Resize-10 / Upsample
round nearest indices down when upsampling and up when downsampling.  Where onnxruntime departs
from the spec it follows the spec: an roi still crops an axis whose scale is 1, and an axis whose
length does not change under a scale other than 1 is still resampled.
"""
from __future__ import annotations

import functools
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from onnx2torch.assemble import ConversionContext
from onnx2torch.attributes import OnnxNode
from onnx2torch.dtypes import torch_dtype
from onnx2torch.registry import Lowered, converter

__all__ = ["Resize", "resize", "resize_10", "upsample_7", "upsample_9"]

logger = logging.getLogger(__name__)

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "tf_crop_and_resize",
)
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
#: Rounding of Resize-10 and Upsample: truncate when upsampling, ceil when downsampling.
LEGACY_NEAREST = "legacy"
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")
_TORCH_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _f32(value: float) -> np.float32:
    return np.float32(value)


def _shortest(value: float) -> float:
    """The shortest decimal naming the same float32 (ONNX scales, roi and float attributes are
    float32): 1.7 rather than 1.7000000476837158.  Computations go back through float32."""
    return float(str(_f32(value)))


def scaled_size(in_len: int, scale: float) -> int:
    """floor(input_dimension * scale) with the product in float32, as onnxruntime computes it.

    NOTE: onnx's reference and shape inference multiply in double instead; the two differ when
    the float32 product rounds up to an integer (10 * 2.3f: ORT 23, reference 22).  The float32
    product is what runtimes, and the framework that exported the scale (torch:
    floor(10 * 2.3) = 23), produce."""
    return int(math.floor(float(_f32(in_len) * _f32(scale))))


# --- output geometry ------------------------------------------------------------------------
def output_geometry(
    in_shape: list[int],
    axes: list[int],
    scales: list[float] | None,
    sizes: list[int] | None,
    policy: str,
) -> tuple[list[int], list[float]]:
    """Output shape and the per-axis scale the coordinate transform uses (1.0 off ``axes``)."""
    out_shape = list(in_shape)
    axis_scales = [1.0] * len(in_shape)
    if scales is not None:
        if len(scales) != len(axes):
            raise ValueError(f"Resize: {len(scales)} scales for {len(axes)} axes")
        for d, s in zip(axes, scales):
            if not s > 0:
                raise ValueError(f"Resize: scales must be > 0, got {s}")
            out_shape[d] = scaled_size(in_shape[d], s)
            axis_scales[d] = float(_f32(s))
        return out_shape, axis_scales
    if sizes is None:
        raise ValueError("Resize: one of 'scales' and 'sizes' must be given")
    if len(sizes) != len(axes):
        raise ValueError(f"Resize: {len(sizes)} sizes for {len(axes)} axes")
    # NOTE: scale = sizes / input size is evaluated in float32, like onnxruntime does; it only
    # feeds the coordinate transform (and the aspect-ratio policy).
    ratios = [_f32(_f32(o) / _f32(in_shape[d])) if in_shape[d] else _f32(1.0) for d, o in zip(axes, sizes)]
    if policy == "stretch":
        for d, o, r in zip(axes, sizes, ratios):
            out_shape[d] = int(o)
            axis_scales[d] = float(r)
        return out_shape, axis_scales
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    for d in axes:
        # NOTE: round_int rounds halfway cases up (spec); the product is float32 as in ORT.
        out_shape[d] = int(math.floor(float(_f32(scale * _f32(in_shape[d]))) + 0.5))
        axis_scales[d] = float(scale)
    return out_shape, axis_scales


# --- coordinates and taps -------------------------------------------------------------------
def source_coordinates(
    ctm: str, in_len: int, out_len: int, scale: float, roi: tuple[float, float]
) -> torch.Tensor:
    """x_original for every output index of one axis, float32 (the spec's formulas, evaluated
    in float32 in the same order as onnxruntime so that rounding ties resolve the same way)."""
    x = torch.arange(out_len, dtype=torch.float32)
    s = torch.tensor(scale, dtype=torch.float32)
    if ctm == "half_pixel":
        return (x + 0.5) / s - 0.5
    if ctm == "pytorch_half_pixel":
        return (x + 0.5) / s - 0.5 if out_len > 1 else torch.zeros(out_len)
    if ctm == "half_pixel_symmetric":
        output_width = _f32(scale) * _f32(in_len)
        adjustment = _f32(out_len) / output_width
        offset = _f32(in_len) / _f32(2.0) * (_f32(1.0) - adjustment)
        # NOTE: ORT evaluates offset + (x + 0.5) / scale - 0.5 in double, then rounds to float.
        xd = x.double()
        return (float(offset) + (xd + 0.5) / scale - 0.5).float()
    if ctm == "asymmetric":
        return x / s
    if ctm == "tf_half_pixel_for_nn":
        return (x + 0.5) / s
    if ctm == "align_corners":
        if out_len == 1:
            return torch.zeros(1)
        return x * float(in_len - 1) / float(out_len - 1)
    if ctm == "tf_crop_and_resize":
        start, end = _f32(roi[0]), _f32(roi[1])
        if out_len == 1:
            # NOTE: ORT evaluates the single-output case as 0.5 * (start + end) * (len - 1) in
            # double and rounds to float once.
            return torch.full((1,), float(_f32(0.5 * float(start + end) * (in_len - 1))))
        return float(start * _f32(in_len - 1)) + x * float(end - start) * float(in_len - 1) / float(out_len - 1)
    raise ValueError(f"Resize: unknown coordinate_transformation_mode {ctm!r}")


def nearest_indices(coords: torch.Tensor, nearest_mode: str, scale: float, in_len: int) -> torch.Tensor:
    """The input index each output index copies (clamped to the axis)."""
    low = torch.floor(coords)
    frac = coords - low  # exact in float32
    if nearest_mode == "round_prefer_floor":
        idx = low + (frac > 0.5)
    elif nearest_mode == "round_prefer_ceil":
        idx = low + (frac >= 0.5)
    elif nearest_mode == "floor":
        idx = low
    elif nearest_mode == "ceil":
        idx = torch.ceil(coords)
    elif nearest_mode == LEGACY_NEAREST:
        # NOTE: Resize-10 / Upsample define no rounding; onnxruntime (the behaviour models were
        # exported against) truncates when upsampling and takes the ceiling when downsampling.
        idx = torch.ceil(coords) if scale < 1 else torch.trunc(coords)
    else:
        raise ValueError(f"Resize: unknown nearest_mode {nearest_mode!r}")
    return idx.long().clamp_(0, max(in_len - 1, 0))


def _cubic_kernel(d: torch.Tensor, a: float) -> torch.Tensor:
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _cubic_taps(
    coords: torch.Tensor, in_len: int, cubic_coeff_a: float, exclude_outside: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4-tap cubic convolution (Keys) around each coordinate, in float32.

    NOTE: the coefficients are evaluated in float32 in the order onnxruntime (and, with its
    float32 cubic_coeff_a, the reference) evaluates them; exclude_outside renormalises by small
    sums near the border, where float64 coefficients would drift from both by ~1e-5."""
    a = _f32(cubic_coeff_a)
    a5, a8, a4 = (float(_f32(k) * a) for k in (5, 8, 4))
    a2, a3 = float(a + _f32(2)), float(a + _f32(3))
    a = float(a)
    low = torch.floor(coords)
    s = coords - low  # in [0, 1), exact
    s1, t, t1 = s + 1, 1 - s, 2 - s
    weights = torch.stack(
        [
            ((a * s1 - a5) * s1 + a8) * s1 - a4,
            (a2 * s - a3) * s * s + 1,
            (a2 * t - a3) * t * t + 1,
            ((a * t1 - a5) * t1 + a8) * t1 - a4,
        ],
        dim=1,
    )
    idx = low.long()[:, None] + torch.arange(-1, 3)[None, :]
    if exclude_outside:
        weights = torch.where((idx < 0) | (idx >= in_len), torch.zeros_like(weights), weights)
        total = weights.sum(dim=1, keepdim=True)
        weights = weights / torch.where(total == 0, torch.ones_like(total), total)
    return idx.clamp_(0, max(in_len - 1, 0)), weights


def interpolation_taps(
    coords: torch.Tensor,
    in_len: int,
    scale: float,
    mode: str,
    cubic_coeff_a: float,
    exclude_outside: bool,
    antialias: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input indices ``(out, taps)`` and weights ``(out, taps)`` for linear / cubic."""
    if mode == "cubic" and not (antialias and scale < 1):
        return _cubic_taps(coords, in_len, cubic_coeff_a, exclude_outside)
    x = coords.double()
    # NOTE: like the spec's reference, the pixel left of x_original is the one with ratio in
    # (0, 1]; with edge padding (index clamping) this is the same blend as ratio in [0, 1).
    base = torch.ceil(x) - 1
    ratio = x - base
    # NOTE: antialias stretches the filter by max(1, 1/scale) (spec), i.e. samples it at
    # distance * min(scale, 1) and renormalises; it changes nothing when upscaling.
    stretch = scale if antialias and scale < 1 else 1.0
    support = 1 if mode == "linear" else 2
    start = math.floor(-support / stretch) + 1
    offsets = torch.arange(start, 2 - start, dtype=torch.float64)
    dist = (offsets[None, :] - ratio[:, None]) * stretch
    if mode == "linear":
        weights = (1 - dist.abs()).clamp(0, 1)
    else:
        weights = _cubic_kernel(dist, cubic_coeff_a)
    if stretch != 1.0:
        weights = weights / weights.sum(dim=1, keepdim=True)
    idx = base.long()[:, None] + offsets.long()[None, :]
    if exclude_outside:
        weights = torch.where((idx < 0) | (idx >= in_len), torch.zeros_like(weights), weights)
        total = weights.sum(dim=1, keepdim=True)
        weights = weights / torch.where(total == 0, torch.ones_like(total), total)
    return idx.clamp_(0, max(in_len - 1, 0)), weights


def _take(x: torch.Tensor, axis: int, idx: torch.Tensor) -> torch.Tensor:
    """``x.index_select(axis, idx)``; along the last axis torch.gather is several times faster."""
    if axis == x.dim() - 1:
        shape = list(x.shape)
        shape[-1] = idx.numel()
        return torch.gather(x, axis, idx.expand(shape))
    return x.index_select(axis, idx)


def _gather_blend(x: torch.Tensor, axis: int, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_k weights[:, k] * x[..., idx[:, k], ...] along ``axis`` (a loop over the few taps)."""
    idx = idx.to(x.device)
    weights = weights.to(device=x.device, dtype=x.dtype)
    out_len, taps = idx.shape
    if taps > 4:
        # wide antialias filters: one gather of every tap and a reduction beats a long loop
        shape = list(x.shape)
        shape[axis : axis + 1] = [out_len, taps]
        picked = x.index_select(axis, idx.reshape(-1)).reshape(shape)
        w_shape = [1] * len(shape)
        w_shape[axis], w_shape[axis + 1] = out_len, taps
        return (picked * weights.reshape(w_shape)).sum(dim=axis + 1)
    w_shape = [1] * x.dim()
    w_shape[axis] = idx.shape[0]
    out = _take(x, axis, idx[:, 0]) * weights[:, 0].reshape(w_shape)
    for k in range(1, idx.shape[1]):
        out.addcmul_(_take(x, axis, idx[:, k]), weights[:, k].reshape(w_shape))
    return out


def _is_power_of_two(s: float) -> bool:
    return s >= 1 and math.frexp(s)[0] == 0.5


@functools.lru_cache(maxsize=64)
def _nearest_is_repeat(ctm: str, nearest_mode: str, factor: int) -> bool:
    """Whether nearest resizing by the integer ``factor`` maps output ``i`` to ``i // factor``.

    The transforms checked here are affine with slope 1/factor and an offset independent of the
    length, and rounding commutes with integer shifts, so one period over a few pixels decides
    it for every length (power-of-two factors keep the float32 arithmetic exact)."""
    if ctm not in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric", "asymmetric", "tf_half_pixel_for_nn"):
        return False
    in_len = 3
    coords = source_coordinates(ctm, in_len, in_len * factor, float(factor), (0.0, 1.0))
    idx = nearest_indices(coords, nearest_mode, float(factor), in_len)
    return bool(torch.equal(idx, torch.arange(in_len * factor) // factor))


def torch_equivalent(
    config: dict,
    in_shape: list[int | None],
    out_shape: list[int | None],
    axis_scales: list[float],
    from_sizes: bool,
) -> dict | None:
    """``F.interpolate`` keyword arguments computing exactly this resize, or ``None``.

    Dims may be ``None`` (unknown at conversion time); the answer is then only given when it
    holds for every value of those dims."""
    rank = len(in_shape)
    mode, ctm = config["mode"], config["coordinate_transformation_mode"]
    if rank not in (3, 4, 5) or ctm == "tf_crop_and_resize":
        return None
    for d in (0, 1):
        # NOTE: unknown dims compare equal only when the axis is not resized at all.
        if axis_scales[d] != 1.0 or out_shape[d] != in_shape[d]:
            return None
    if from_sizes and any(o is None for o in out_shape[2:]):
        return None
    spatial = range(2, rank)
    for d in spatial:
        # torch refuses empty outputs; an unknown size may be empty only when downscaling.
        if out_shape[d] == 0 or (out_shape[d] is None and axis_scales[d] < 1):
            return None
    if mode == "nearest":
        for d in spatial:
            s = axis_scales[d]
            if not _is_power_of_two(s):
                return None
            if in_shape[d] is not None and out_shape[d] != in_shape[d] * s:
                return None
            if s > 1 and not _nearest_is_repeat(ctm, config["nearest_mode"], int(s)):
                return None
        kwargs = {"mode": "nearest"}
    else:
        if ctm not in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric", "align_corners"):
            return None
        if mode == "cubic" and (rank != 4 or config["cubic_coeff_a"] != -0.75 or config["exclude_outside"]):
            return None
        for d in spatial:
            s, w, o = axis_scales[d], in_shape[d], out_shape[d]
            if o is not None and o == w and s != 1.0:
                return None  # torch copies an input whose size does not change, ONNX resamples it
            if from_sizes:
                if config["antialias"] and (w is None or o < w):
                    return None
                if ctm == "pytorch_half_pixel" and o == 1 and w != 1:
                    return None  # x_original is 0 there, not the half-pixel centre
            else:
                if config["antialias"] and s < 1:
                    return None
                if w is None:
                    if s != int(s):
                        return None  # only integer scales give the same size for every input
                elif math.floor(w * _shortest(s)) != o:
                    return None  # torch sizes the output as floor(size * scale) in double
                elif ctm == "half_pixel_symmetric" and float(_f32(s) * _f32(w)) != o:
                    return None  # a fractional output width shifts the grid
                if ctm == "pytorch_half_pixel" and s < 1:
                    return None
        kwargs = {
            "mode": "bicubic" if mode == "cubic" else _TORCH_LINEAR[rank - 2],
            "align_corners": ctm == "align_corners",
        }
    if from_sizes:
        kwargs["size"] = tuple(int(o) for o in out_shape[2:])
    else:
        # NOTE: with recompute_scale_factor unset, torch maps coordinates with 1/scale, as ONNX
        # does with the given scale (its output size was checked to agree above).
        scales = tuple(_shortest(s) for s in axis_scales[2:])
        kwargs["scale_factor"] = scales[0] if len(set(scales)) == 1 else scales
    return kwargs


# --- the module -----------------------------------------------------------------------------
class Resize(nn.Module):
    """ONNX Resize / Upsample.

    ``scales`` / ``sizes`` / ``roi`` given here were constants of the model; otherwise they come
    as ``forward`` arguments.  The tensor is resampled axis by axis in float32 (float64 for
    float64 input) and cast back; nearest mode copies values and keeps any dtype.
    """

    def __init__(
        self,
        mode: str = "nearest",
        coordinate_transformation_mode: str = "half_pixel",
        nearest_mode: str = "round_prefer_floor",
        cubic_coeff_a: float = -0.75,
        exclude_outside: bool = False,
        extrapolation_value: float = 0.0,
        antialias: bool = False,
        axes: tuple[int, ...] | None = None,
        keep_aspect_ratio_policy: str = "stretch",
        scales: tuple[float, ...] | None = None,
        sizes: tuple[int, ...] | None = None,
        roi: tuple[float, ...] | None = None,
    ):
        super().__init__()
        self.mode = mode
        self.coordinate_transformation_mode = coordinate_transformation_mode
        self.nearest_mode = nearest_mode
        self.cubic_coeff_a = _shortest(cubic_coeff_a)
        self.exclude_outside = bool(exclude_outside)
        self.extrapolation_value = _shortest(extrapolation_value)
        self.antialias = bool(antialias)
        self.axes = None if axes is None else tuple(int(a) for a in axes)
        self.keep_aspect_ratio_policy = keep_aspect_ratio_policy
        self.scales = None if scales is None else tuple(_shortest(s) for s in scales)
        self.sizes = None if sizes is None else tuple(int(s) for s in sizes)
        self.roi = None if roi is None else tuple(_shortest(r) for r in roi)

    def config(self) -> dict:
        return {
            "mode": self.mode,
            "coordinate_transformation_mode": self.coordinate_transformation_mode,
            "nearest_mode": self.nearest_mode,
            "cubic_coeff_a": self.cubic_coeff_a,
            "exclude_outside": self.exclude_outside,
            "antialias": self.antialias,
        }

    def extra_repr(self) -> str:
        parts = [f"mode={self.mode!r}", f"coordinate_transformation_mode={self.coordinate_transformation_mode!r}"]
        if self.mode == "nearest":
            parts.append(f"nearest_mode={self.nearest_mode!r}")
        if self.mode == "cubic":
            parts.append(f"cubic_coeff_a={self.cubic_coeff_a}")
        if self.exclude_outside:
            parts.append("exclude_outside=True")
        if self.antialias:
            parts.append("antialias=True")
        if self.coordinate_transformation_mode == "tf_crop_and_resize":
            parts.append(f"extrapolation_value={self.extrapolation_value}")
        if self.axes is not None:
            parts.append(f"axes={self.axes}")
        if self.keep_aspect_ratio_policy != "stretch":
            parts.append(f"keep_aspect_ratio_policy={self.keep_aspect_ratio_policy!r}")
        for name in ("scales", "sizes", "roi"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value}")
        return ", ".join(parts)

    @staticmethod
    def _values(tensor: torch.Tensor | None) -> list | None:
        if tensor is None or tensor.numel() == 0:
            return None
        return tensor.reshape(-1).tolist()

    def forward(
        self,
        x: torch.Tensor,
        roi: torch.Tensor | None = None,
        scales: torch.Tensor | None = None,
        sizes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        rank = x.dim()
        axes = list(range(rank)) if self.axes is None else [a + rank if a < 0 else a for a in self.axes]
        scale_values = list(self.scales) if self.scales is not None else self._values(scales)
        size_values = None
        if scale_values is None:
            size_values = list(self.sizes) if self.sizes is not None else self._values(sizes)
            size_values = None if size_values is None else [int(v) for v in size_values]
        in_shape = list(x.shape)
        out_shape, axis_scales = output_geometry(
            in_shape, axes, scale_values, size_values, self.keep_aspect_ratio_policy
        )

        ctm = self.coordinate_transformation_mode
        roi_pairs = [(0.0, 1.0)] * rank
        if ctm == "tf_crop_and_resize":
            roi_values = list(self.roi) if self.roi is not None else self._values(roi)
            if roi_values is None or len(roi_values) != 2 * len(axes):
                raise ValueError(f"Resize: tf_crop_and_resize needs an roi of {2 * len(axes)} values, got {roi_values}")
            for i, d in enumerate(axes):
                roi_pairs[d] = (roi_values[i], roi_values[len(axes) + i])

        if self.mode != "nearest" and not x.is_floating_point():
            raise TypeError(
                f"Resize: mode={self.mode!r} on {x.dtype} input is not supported (ONNX leaves the "
                "rounding of interpolated integers undefined; runtimes disagree)"
            )
        if x.is_floating_point() and (size_values is None or self.keep_aspect_ratio_policy == "stretch"):
            # NOTE: not_larger / not_smaller map coordinates with the policy's scale, which torch
            # (given the size) would replace with input / output per axis.
            fast = torch_equivalent(self.config(), in_shape, out_shape, axis_scales, size_values is not None)
            if fast is not None:
                return F.interpolate(x, **fast)

        compute_dtype = x.dtype if self.mode == "nearest" or x.dtype == torch.float64 else torch.float32
        y = x.to(compute_dtype)
        outside = None
        for d in range(rank):
            in_len, out_len, s = in_shape[d], out_shape[d], axis_scales[d]
            # NOTE: an axis with scale 1 and unchanged length is left alone in every mode (as in
            # the reference and ORT) unless tf_crop_and_resize crops it.
            if s == 1.0 and out_len == in_len and roi_pairs[d] == (0.0, 1.0):
                continue
            if out_len == 0 or in_len == 0:
                shape = list(y.shape)
                shape[d] = out_len
                y = y.new_zeros(shape)
                continue
            coords = source_coordinates(ctm, in_len, out_len, s, roi_pairs[d])
            if self.mode == "nearest":
                y = _take(y, d, nearest_indices(coords, self.nearest_mode, s, in_len).to(y.device))
            else:
                idx, weights = interpolation_taps(
                    coords, in_len, s, self.mode, float(_f32(self.cubic_coeff_a)), self.exclude_outside,
                    self.antialias,
                )
                y = _gather_blend(y, d, idx, weights)
            if ctm == "tf_crop_and_resize":
                mask_shape = [1] * rank
                mask_shape[d] = out_len
                axis_outside = ((coords < 0) | (coords > in_len - 1)).reshape(mask_shape).to(y.device)
                outside = axis_outside if outside is None else outside | axis_outside
        if outside is not None:
            # NOTE: an output whose source lies outside the input on any axis is
            # extrapolation_value (cast like static_cast<T> for integer tensors).
            fill = torch.tensor(float(_f32(self.extrapolation_value))).to(y.dtype).to(y.device)
            y = torch.where(outside, fill, y)
        return y.to(x.dtype)


# --- converters -----------------------------------------------------------------------------
def _optional_values(ctx: ConversionContext, name: str, kind: str) -> tuple[list | None, bool]:
    """``(values, dynamic)`` of an optional input: constant values (``None`` when absent or
    empty) or ``dynamic=True`` when it is only known at runtime."""
    if not name:
        return None, False
    if not ctx.is_constant(name):
        return None, True
    values = ctx.constant_floats(name) if kind == "float" else ctx.constant_ints(name)
    return (values or None), False


def _is_float_input(ctx: ConversionContext, name: str) -> bool | None:
    elem = ctx.elem_type(name)
    if elem is None:
        return None
    try:
        return torch_dtype(elem).is_floating_point
    except TypeError:
        return None


def _lower(
    node: OnnxNode,
    ctx: ConversionContext,
    module: Resize,
    x_name: str,
    roi_name: str,
    scales_name: str,
    sizes_name: str,
) -> Lowered:
    """Check the configuration, fold what is constant and pick nn.Upsample when it is exact."""
    scale_values, scales_dynamic = _optional_values(ctx, scales_name, "float")
    size_values, sizes_dynamic = _optional_values(ctx, sizes_name, "int")
    if scale_values is not None and (size_values is not None or sizes_dynamic):
        raise node.unsupported("inputs", "both scales and sizes", "exactly one of scales / sizes")
    if scale_values is None and not scales_dynamic and size_values is None and not sizes_dynamic:
        raise node.unsupported("inputs", "neither scales nor sizes", "exactly one of scales / sizes")
    if scale_values is not None and any(not s > 0 for s in scale_values):
        raise node.unsupported("scales", scale_values, "values > 0")
    if size_values is not None and any(s < 0 for s in size_values):
        raise node.unsupported("sizes", size_values, "values >= 0")

    float_input = _is_float_input(ctx, x_name)
    if module.mode != "nearest" and float_input is False:
        raise node.unsupported(
            f"mode={module.mode!r} on input type", ctx.elem_type(x_name),
            "nearest for integer tensors (ONNX does not define how interpolated integers round)",
        )

    roi_values, roi_dynamic = None, False
    if module.coordinate_transformation_mode == "tf_crop_and_resize":
        roi_values, roi_dynamic = _optional_values(ctx, roi_name, "float")
        if roi_values is None and not roi_dynamic:
            raise node.unsupported("roi", "absent", "an roi input with tf_crop_and_resize")

    module.scales = None if scale_values is None else tuple(_shortest(v) for v in scale_values)
    module.sizes = None if (scale_values is not None or size_values is None) else tuple(size_values)
    module.roi = None if roi_values is None else tuple(_shortest(v) for v in roi_values)

    rank = ctx.rank(x_name)
    axes = list(range(rank)) if rank is not None and module.axes is None else None
    if rank is not None and module.axes is not None:
        if any(not -rank <= a < rank for a in module.axes):
            raise node.unsupported("axes", list(module.axes), f"values in [{-rank}, {rank - 1}]")
        axes = [a % rank for a in module.axes]
        if len(set(axes)) != len(axes):
            raise node.unsupported("axes", list(module.axes), "distinct axes")
    for what, values in (("scales", scale_values), ("sizes", size_values)):
        if axes is not None and values is not None and len(values) != len(axes):
            raise node.unsupported(f"{what} length", len(values), f"{len(axes)} (one per resized axis)")

    # nn.Upsample when the whole geometry is fixed now and torch computes the same thing.
    static_target = scale_values is not None or (
        size_values is not None and module.keep_aspect_ratio_policy == "stretch"
    )
    if float_input and axes is not None and static_target:
        in_shape = [d if isinstance(d, int) else None for d in ctx.shape(x_name)]
        out_shape, axis_scales = list(in_shape), [1.0] * rank
        if scale_values is not None:
            for d, s in zip(axes, scale_values):
                axis_scales[d] = float(_f32(s))
                out_shape[d] = None if in_shape[d] is None else scaled_size(in_shape[d], s)
        else:
            for d, o in zip(axes, size_values):
                out_shape[d] = int(o)
                axis_scales[d] = float(_f32(_f32(o) / _f32(in_shape[d]))) if in_shape[d] else math.nan
        fast = torch_equivalent(module.config(), in_shape, out_shape, axis_scales, scale_values is None)
        if fast is not None:
            return Lowered(nn.Upsample(**fast), inputs=[x_name])

    inputs = [
        x_name,
        roi_name if roi_dynamic else "",
        scales_name if scales_dynamic else "",
        sizes_name if sizes_dynamic and scale_values is None else "",
    ]
    while inputs[-1] == "":
        inputs.pop()
    return Lowered(module, inputs=inputs)


def _check_choice(node: OnnxNode, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise node.unsupported(name, value, ", ".join(choices))


@converter("Resize", since=11)
def resize(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Resize(X, roi?, scales?, sizes?) -> Y = X resampled (nearest / N-linear / N-cubic)"""
    mode = node.attr_str("mode", "nearest")
    ctm = node.attr_str("coordinate_transformation_mode", "half_pixel")
    nearest_mode = node.attr_str("nearest_mode", "round_prefer_floor")
    policy = node.attr_str("keep_aspect_ratio_policy", "stretch")
    _check_choice(node, "mode", mode, MODES)
    _check_choice(node, "coordinate_transformation_mode", ctm, COORDINATE_MODES)
    _check_choice(node, "nearest_mode", nearest_mode, NEAREST_MODES)
    _check_choice(node, "keep_aspect_ratio_policy", policy, ASPECT_POLICIES)
    if mode == "nearest" and node.attr_int("antialias", 0):
        # NOTE: the spec defines antialias for the linear and cubic filters only; onnxruntime
        # and the reference refuse it with nearest.
        raise node.unsupported("antialias with mode", mode, "linear, cubic")
    axes = node.attr_ints("axes", None)
    module = Resize(
        mode=mode,
        coordinate_transformation_mode=ctm,
        nearest_mode=nearest_mode,
        cubic_coeff_a=node.attr_float("cubic_coeff_a", -0.75),
        exclude_outside=bool(node.attr_int("exclude_outside", 0)),
        extrapolation_value=node.attr_float("extrapolation_value", 0.0),
        antialias=bool(node.attr_int("antialias", 0)),
        axes=None if axes is None else tuple(axes),
        keep_aspect_ratio_policy=policy,
    )
    return _lower(node, ctx, module, node.input(0), node.input(1), node.input(2), node.input(3))


def _legacy_module(node: OnnxNode) -> Resize:
    mode = node.attr_str("mode", "nearest")
    _check_choice(node, "mode", mode, ("nearest", "linear"))
    # NOTE: Resize-10 and Upsample map x_original = x_resized / scale (onnxruntime's reading;
    # Resize-11 later named it "asymmetric").
    return Resize(mode=mode, coordinate_transformation_mode="asymmetric", nearest_mode=LEGACY_NEAREST)


@converter("Resize", since=10)
def resize_10(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Resize(X, scales) -> Y = X resampled (nearest / N-linear, asymmetric coordinates)"""
    return _lower(node, ctx, _legacy_module(node), node.input(0), "", node.input(1), "")


@converter("Upsample", since=9)
def upsample_9(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Upsample(X, scales) -> Y = X upsampled (nearest / N-linear, asymmetric coordinates)"""
    scales = ctx.constant_floats(node.input(1))
    if scales is not None and any(s < 1 for s in scales):
        raise node.unsupported("scales", scales, "values >= 1")
    return _lower(node, ctx, _legacy_module(node), node.input(0), "", node.input(1), "")


@converter("Upsample", since=7)
def upsample_7(node: OnnxNode, ctx: ConversionContext) -> Lowered:
    """Upsample(X) -> Y = X upsampled by the 'scales' attribute (nearest / N-linear)"""
    scales = node.attr("scales")
    scales = [float(_f32(s)) for s in scales]
    if any(s < 1 for s in scales):
        raise node.unsupported("scales", scales, "values >= 1")
    module = _legacy_module(node)
    module.scales = tuple(_shortest(s) for s in scales)
    rank = ctx.rank(node.input(0))
    if rank is not None and len(scales) != rank:
        raise node.unsupported("scales length", len(scales), f"{rank} (the input rank)")
    float_input = _is_float_input(ctx, node.input(0))
    if module.mode != "nearest" and float_input is False:
        raise node.unsupported("mode='linear' on input type", ctx.elem_type(node.input(0)), "float tensors")
    if float_input and rank is not None:
        in_shape = [d if isinstance(d, int) else None for d in ctx.shape(node.input(0))]
        out_shape = [None if w is None else scaled_size(w, s) for w, s in zip(in_shape, scales)]
        fast = torch_equivalent(module.config(), in_shape, out_shape, scales, False)
        if fast is not None:
            return Lowered(nn.Upsample(**fast), inputs=[node.input(0)])
    return Lowered(module, inputs=[node.input(0)])
