"""slmqa.inference.runtime: one --backend/--device/--dtype vocabulary; impossible combinations refused by name."""

from __future__ import annotations

import argparse

import pytest

from slmqa.errors import ConfigError
from slmqa.inference.runtime import Runtime, add_runtime_arguments, runtime_from_args


@pytest.mark.parametrize(
    "backend, device, dtype, cuda_devices, expected",
    [
        ("torch", "auto", "float32", 0, "cpu"),
        ("torch", "auto", "bfloat16", 0, "cpu"),
        ("torch", "auto", "float16", 1, "cuda"),
        ("torch", "auto", "int8", 2, "cpu"),  # int8 kernels are CPU-only: auto picks the CPU
        ("onnx", "auto", "float32", 2, "cpu"),  # so is ONNX Runtime here
        ("onnx", "cpu", "int8", 0, "cpu"),
        ("torch", "cpu", "bfloat16", 1, "cpu"),
        ("torch", "cuda", "float32", 1, "cuda"),
        ("torch", "cuda:1", "bfloat16", 2, "cuda:1"),
    ],
)
def test_resolve(backend, device, dtype, cuda_devices, expected):
    resolved = Runtime(backend, device, dtype).resolve(cuda_devices)
    assert resolved == Runtime(backend, expected, dtype)
    assert resolved.resolve(cuda_devices) == resolved


@pytest.mark.parametrize(
    "backend, device, dtype, cuda_devices, message",
    [
        ("torch", "cuda", "float32", 0, "CUDA is not available"),
        ("torch", "cuda:0", "float32", 0, "CUDA is not available"),
        ("torch", "cuda:2", "float32", 2, "only 2 CUDA device"),
        ("torch", "cpu", "float16", 1, "float16 is not supported on the CPU"),
        ("torch", "auto", "float16", 0, "float16 is not supported on the CPU"),
        ("torch", "cuda", "int8", 1, "int8 kernels run only on the CPU"),
        ("onnx", "cuda", "float32", 1, "ONNX Runtime runs on the CPU here"),
        ("onnx", "cpu", "bfloat16", 0, "--backend onnx runs float32 or int8, not bfloat16"),
        ("onnx", "auto", "float16", 1, "--backend onnx runs float32 or int8, not float16"),
    ],
)
def test_resolve_refuses(backend, device, dtype, cuda_devices, message):
    with pytest.raises(ConfigError, match=message):
        Runtime(backend, device, dtype).resolve(cuda_devices)


def test_names_and_retired_spellings():
    assert [Runtime(*spec).name for spec in (("torch",), ("onnx", "cpu", "int8"), ("torch", "cuda:1", "bfloat16"))] == [
        "torch", "onnx-int8", "torch-bfloat16@cuda:1"]
    with pytest.raises(ConfigError, match="--backend onnx-int8 is now --backend onnx --dtype int8"):
        Runtime("onnx-int8")
    with pytest.raises(ConfigError, match="Unknown backend 'tensorrt'"):
        Runtime("tensorrt")
    with pytest.raises(ConfigError, match="Unknown dtype"):
        Runtime(dtype="int4")


def test_every_command_gets_the_same_options(capsys):
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    assert runtime_from_args(parser.parse_args([])) == Runtime("torch", "auto", "auto")
    assert runtime_from_args(parser.parse_args(["--backend", "onnx", "--dtype", "int8", "--device", "cpu"])) == Runtime(
        "onnx", "cpu", "int8")
    assert runtime_from_args(parser.parse_args(["--threads", "3"])) == Runtime("torch", "auto", "auto", 3)
    for bad in (["--device", "gpu"], ["--backend", "torch-int8"], ["--dtype", "fp8"], ["--threads", "two"]):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(bad)
        assert exit_info.value.code == 2
    assert "is now --backend torch --dtype int8" in capsys.readouterr().err


def test_threads_must_be_positive_and_do_not_change_the_name():
    with pytest.raises(ConfigError, match="--threads must be at least 1, got 0"):
        Runtime(threads=0)
    assert Runtime("onnx", "cpu", "int8", threads=1).name == "onnx-int8"
    assert Runtime("onnx", "auto", "int8", threads=1).resolve(0).threads == 1


@pytest.mark.parametrize("backend, device, flags, expected", [
    ("torch", "cpu", "avx2 avx512_bf16", "bfloat16"),
    ("torch", "cpu", "avx2", "float32"),
    ("onnx", "cpu", "avx512_bf16", "float32"),  # ONNX Runtime's CPU kernels: float32 or int8
    ("torch", "cuda", "avx512_bf16", "float32"),
])
def test_dtype_auto_resolves_from_the_cpu_flags(monkeypatch, caplog, backend, device, flags, expected):
    monkeypatch.setenv("SLMQA_CPU_FLAGS", flags)
    with caplog.at_level("INFO", logger="slmqa"):
        resolved = Runtime(backend, device, "auto").resolve(cuda_devices=1)
    assert resolved.dtype == expected and resolved.name == Runtime(backend, device, expected).name
    if backend == "torch":
        assert f"--dtype auto: {expected}" in caplog.text


def test_commands_default_to_dtype_auto():
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    assert parser.parse_args([]).dtype == "auto"
