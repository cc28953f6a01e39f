"""Command line: convert an ONNX model to PyTorch and verify it against onnxruntime.

    python onnx2torch_cli.py --onnx_path m.onnx --pytorch_path m.pth --input_shape input:1,3,224,224
    python onnx2torch_cli.py --onnx_path m.onnx --code_path out/m.py   # standalone source + out/m.pt

Exit status: 0 verified, 1 verification failed, 2 bad usage or unconvertible model.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import traceback
import warnings

__all__ = ["main", "parse_input_shapes"]

EXIT_OK, EXIT_MISMATCH, EXIT_UNCONVERTIBLE = 0, 1, 2


class UsageError(Exception):
    """A command-line value that cannot be used."""


def parse_input_shapes(values: list[str] | None) -> dict[str, list[int]] | None:
    """``["input:1,3,224,224", "mask:1,128"]`` -> ``{"input": [1, 3, 224, 224], "mask": [1, 128]}``."""
    if not values:
        return None
    shapes = {}
    for value in values:
        name, sep, dims = value.rpartition(":")
        if not sep or not name:
            raise UsageError(f"--input_shape '{value}' must look like name:d0,d1,... (e.g. input:1,3,224,224)")
        try:
            shapes[name] = [int(d) for d in dims.split(",")] if dims else []
        except ValueError:
            raise UsageError(f"--input_shape '{value}': dimensions must be integers separated by commas") from None
        if any(d < 0 for d in shapes[name]):
            raise UsageError(f"--input_shape '{value}': dimensions must be >= 0")
    return shapes


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onnx2torch",
        description="Convert an ONNX model into a PyTorch nn.Module and verify it against onnxruntime.",
    )
    parser.add_argument("--onnx_path", required=True, help="the ONNX model to convert")
    parser.add_argument("--pytorch_path", help="where to torch.save the converted module (.pth)")
    parser.add_argument("--code_path", metavar="OUT/NAME.py",
                        help="write the model as standalone PyTorch source (needs only torch) with its "
                             "weights beside it (NAME.pt); load with NAME.load_model()")
    parser.add_argument(
        "--input_shape", nargs="+", action="extend", metavar="NAME:D0,D1,...",
        help="shape of a model input, one per input (repeat the flag or list them); fixes the "
             "shapes for simplification; optional when the model's inputs are static",
    )
    parser.add_argument("--inputs", nargs="+", action="extend", metavar="TENSOR",
                        help="convert only the part of the graph computed from these tensors (names in the "
                             "original model); default: the model's inputs")
    parser.add_argument("--outputs", nargs="+", action="extend", metavar="TENSOR",
                        help="convert only the part of the graph computing these tensors; default: the "
                             "model's outputs")
    parser.add_argument("--simplify_path", help="save the simplified ONNX model here")
    parser.add_argument("--no_simplify", action="store_true", help="skip onnx-simplifier")
    parser.add_argument("--optimize", action="store_true",
                        help="inference mode: fold BatchNorm into the convolution before it (BatchNorm is "
                             "no longer a separate trainable layer)")
    parser.add_argument("--debug", action="store_true",
                        help="find the first node whose output diverges from onnxruntime; show tracebacks")
    parser.add_argument("--mse_threshold", type=float, default=1e-7,
                        help="verification passes when every output's MSE is at most this (default 1e-7)")
    parser.add_argument("--max_constant_bytes", type=int, default=None, metavar="N",
                        help="largest tensor constant folding may create (default 256 MiB); bigger ones "
                             "are computed at run time")
    return parser


def _atomic_save(obj, path: str, save) -> None:
    """Write through a temporary file in the target folder, then rename: no half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".onnx2torch-", suffix=".tmp")
    os.close(fd)
    try:
        save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, without the source line Python prints under them."""
    print(f"onnx2torch: warning: {' '.join(str(message).split())}", file=sys.stderr)


#: Random inputs for verification larger than this are refused (a declared 10**6 x 10**6 input).
MAX_VERIFY_INPUT_BYTES = 2 * 2**30


def _check_input_sizes(model, input_shapes: dict[str, list[int]] | None) -> None:
    """Refuse verification inputs that would not fit in memory, before making them."""
    import math  # noqa: PLC0415

    import onnx  # noqa: PLC0415

    initializers = {t.name for t in model.graph.initializer}
    total = 0
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tt = value.type.tensor_type
        if input_shapes and value.name in input_shapes:
            dims = input_shapes[value.name]
        else:
            dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
        except Exception:  # noqa: BLE001 - an exotic type: make_inputs names it
            itemsize = 8
        total += math.prod(max(int(d), 0) for d in dims) * itemsize
    if total > MAX_VERIFY_INPUT_BYTES:
        raise UsageError(f"verification would need {total / 2**30:.1f} GiB of random inputs (the model's declared "
                         "input shapes); give smaller --input_shape values")


def _save_outputs(args: argparse.Namespace, module, simplified) -> None:
    """Write the verified outputs; if a later one fails, remove the earlier ones written now."""
    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415

    written = []
    try:
        if args.pytorch_path:
            _atomic_save(module, args.pytorch_path, torch.save)
            written.append(args.pytorch_path)
            print(f"saved {args.pytorch_path} (load with torch.load(path, weights_only=False))")
        if args.simplify_path:
            _atomic_save(simplified, args.simplify_path, lambda m, p: onnx.save(m, p))
            written.append(args.simplify_path)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def _run(args: argparse.Namespace) -> int:
    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from onnx2torch.assemble import assemble, check_supported  # noqa: PLC0415
    from onnx2torch.convert import load_model  # noqa: PLC0415
    from onnx2torch.extract import prepare_model  # noqa: PLC0415
    from onnx2torch.limits import constant_limit  # noqa: PLC0415
    from onnx2torch.simplify import restore_initializers, simplify_stripped  # noqa: PLC0415
    from onnx2torch.validate import validate_model  # noqa: PLC0415
    from onnx2torch.verify import find_first_divergence, make_inputs, verify  # noqa: PLC0415

    input_shapes = parse_input_shapes(args.input_shape)
    started = time.perf_counter()
    model, base_dir = load_model(args.onnx_path)
    model = validate_model(model)  # a malformed model fails here, with the reason
    if args.inputs or args.outputs:  # the part, then everything below works on it
        model, notes = prepare_model(model, inputs=args.inputs, outputs=args.outputs)
        print("\n".join(notes))
    known = {v.name for v in model.graph.input}
    for name in input_shapes or {}:
        if name not in known:
            raise UsageError(f"--input_shape names '{name}', but the model's inputs are: {', '.join(sorted(known))}")
    model, notes = prepare_model(model, input_shapes=input_shapes)  # frozen dims follow --input_shape
    if notes:
        print("\n".join(notes))
    check_supported(model)
    simplified, stash = (model, {}) if args.no_simplify else simplify_stripped(model, input_shapes)
    with constant_limit(args.max_constant_bytes):
        module = assemble(simplified, base_dir=base_dir, initializers=stash)
    if args.optimize:
        from onnx2torch.fusion import fold_batch_norm  # noqa: PLC0415

        module = fold_batch_norm(module)
    elapsed = time.perf_counter() - started
    print(f"converted {args.onnx_path} in {elapsed:.2f} s ({len(simplified.graph.node)} nodes after simplification)")
    if stash and (args.simplify_path or args.debug):  # the weights go back only where a whole model is needed
        simplified = restore_initializers(simplified, stash, {v.name for v in model.graph.input})

    _check_input_sizes(model, input_shapes)
    try:
        inputs = make_inputs(model, input_shapes)
        report = verify(model, module, inputs)
    except Exception as exc:  # noqa: BLE001 - converted, but it cannot be compared: not verified
        if args.debug:
            traceback.print_exc()
        print(f"onnx2torch: verification failed: {_one_line(exc)}; nothing was saved", file=sys.stderr)
        return EXIT_MISMATCH
    print(report.format(args.mse_threshold))
    if report.passed(args.mse_threshold):
        code_files = []
        if args.code_path:  # checked before anything is written; written as a pair or not at all
            from onnx2torch.export_code import export_code  # noqa: PLC0415
            from onnx2torch.verify import _torch_args  # noqa: PLC0415

            code_files = export_code(module, args.code_path, example_inputs=_torch_args(module, model, inputs))
        try:
            _save_outputs(args, module, simplified)  # only a verified conversion leaves files behind
        except BaseException:
            for path in code_files:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        if code_files:
            stem = os.path.splitext(os.path.basename(code_files[0]))[0]
            print(f"wrote {code_files[0]} and {code_files[1]} (standalone: from {stem} import load_model)")
    elif args.pytorch_path or args.simplify_path or args.code_path:
        skipped = ", ".join(p for p in (args.pytorch_path, args.simplify_path, args.code_path) if p)
        print(f"not saving {skipped}: verification failed (a larger --mse_threshold accepts the result)")
    if report.passed(args.mse_threshold):
        return EXIT_OK
    if args.debug:
        where = find_first_divergence(simplified, module, inputs=inputs)
        print(where or "no single node diverges beyond tolerance; the difference accumulates")
    return EXIT_MISMATCH


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    from onnx2torch.errors import Onnx2TorchError  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            return _run(args)
    except (Onnx2TorchError, UsageError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"onnx2torch: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UNCONVERTIBLE
    except Exception as exc:  # noqa: BLE001 - never a raw traceback without --debug
        if args.debug:
            traceback.print_exc()
        print(f"onnx2torch: error: unexpected {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_UNCONVERTIBLE


if __name__ == "__main__":
    sys.exit(main())
