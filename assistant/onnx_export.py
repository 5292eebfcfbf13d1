"""ONNX exports of the project's transformer encoders, run later by ONNX Runtime alone.

Both users (the risk transformer's int8 export and the knowledge base's e5
embedder) export a torch module taking ``input_ids`` and ``attention_mask``
with torch's TorchScript-based exporter, optionally quantise its weights to
int8, and keep a stamp of what the file was made from beside it, so that a
stale or damaged export is made again. Exporting needs torch and onnx; running
the file needs neither.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Quantize = Literal["none", "all", "embedding"]


def current_export(target: Path, stamp_file: Path, stamp: dict[str, Any]) -> bool:
    """Whether ``target`` exists and was made from what ``stamp`` describes."""
    if not (target.exists() and stamp_file.exists()):
        return False
    try:
        return bool(json.loads(stamp_file.read_text(encoding="utf-8")) == stamp)
    except ValueError:
        return False  # a broken stamp: export again


def export_onnx(
    module: Any, target: Path, output_name: str, stamp_file: Path, stamp: dict[str, Any], quantize: Quantize
) -> Path:
    """Export ``module(input_ids, attention_mask) -> output_name`` to ``target``
    (batch and token axes dynamic, opset 17), then write ``stamp`` to ``stamp_file``.

    ``quantize="all"``: ONNX Runtime's dynamic quantisation stores the weights, the
    embedding table included, in int8 (per channel, 7-bit range: no saturation in
    the u8 x s8 products of CPUs without VNNI, so every CPU computes alike);
    activations are quantised per call. ``"embedding"``: only the embedding tables
    (the ``Gather`` inputs) are stored in int8, per tensor, and looked up in
    float32: the file is half the size and the matrix products stay float32 and as
    fast. ``"none"``: all float32. The file is written beside ``target`` and moved into
    place, so a crash never leaves half a model under its name."""
    import torch

    target = Path(target)
    ids = torch.tensor([[0, 5, 6, 7, 2]], dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}, output_name: {0: "batch"}}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        float_path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            # The TorchScript exporter is marked deprecated in favour of one that
            # needs onnxscript; it is what the pinned torch exports BERT with as is.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (ids, torch.ones_like(ids)),
                str(float_path),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=[output_name],
                dynamic_axes=axes,
                opset_version=17,
            )
        made = float_path
        if quantize != "none":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            made = Path(tmp) / "model.int8.onnx"
            if quantize == "all":
                quantize_dynamic(float_path, made, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
            else:
                quantize_dynamic(float_path, made, weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])
        made.replace(target)
    tmp_stamp = Path(stamp_file).with_suffix(".tmp")
    tmp_stamp.write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    tmp_stamp.replace(stamp_file)
    return target


def open_session(ensure: Callable[[], Path], stamp_file: Path, threads: int, error: type[Exception]) -> Any:
    """An ONNX Runtime session (CPU, ``threads`` intra-op threads) over ``ensure()``'s file.

    A damaged export (a disk error, a copy cut short) is made again once: its stamp
    is removed and ``ensure`` called again. If that one fails too, ``error`` is raised."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    path = ensure()
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception only
        log.warning("ONNX export unreadable, exporting again", extra={"path": str(path), "error": str(exc)})
        Path(stamp_file).unlink(missing_ok=True)
        path = ensure()
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as again:  # noqa: BLE001
            raise error(f"{path}: ONNX Runtime cannot load the export: {again}") from again
