"""serve.py, the command: loopback by default, the runtime options, a clear exit on an unusable folder."""

from __future__ import annotations

import serve


def test_loopback_and_torch_float32_are_the_defaults():
    args = serve.build_parser().parse_args(["--model", "m", "--documents", "d"])
    assert (args.host, args.backend, args.device, args.dtype) == ("127.0.0.1", "torch", "auto", "float32")


def test_unusable_documents_folder_exits_with_a_message(tmp_path, tiny_model_dir, caplog):
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(tmp_path / "missing")]) == 2
    assert "not found" in caplog.text


def test_impossible_runtime_exits_before_reading_the_folder(tmp_path, tiny_model_dir, caplog):
    assert serve.main(["--model", str(tiny_model_dir), "--documents", str(tmp_path / "missing"), "--backend", "onnx",
                       "--dtype", "bfloat16"]) == 2
    assert "--backend onnx runs float32 or int8" in caplog.text and "not found" not in caplog.text
