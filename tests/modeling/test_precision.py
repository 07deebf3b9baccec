"""slmqa.modeling.precision: bfloat16 advice by what the CPU can do."""

from slmqa.modeling.precision import cpu_has_native_bf16, slow_cpu_bf16_warning


def test_slow_cpu_bf16_warning_only_without_native_bf16():
    assert slow_cpu_bf16_warning("--bf16 trains", native=True) is None
    warning = slow_cpu_bf16_warning("--bf16 trains", native=False)
    assert warning.startswith("--bf16 trains in bfloat16") and "use float32" in warning
    assert isinstance(cpu_has_native_bf16(), bool)
