"""slmqa.modeling.precision: bfloat16 advice and the `auto` choice, decided from the CPU's flags (faked here)."""

import pytest

from slmqa.modeling import precision
from slmqa.modeling.precision import choose_precision, cpu_flags, cpu_has_native_bf16, slow_cpu_bf16_warning


def test_slow_cpu_bf16_warning_only_without_native_bf16():
    assert slow_cpu_bf16_warning("--bf16 trains", native=True) is None
    warning = slow_cpu_bf16_warning("--bf16 trains", native=False)
    assert warning.startswith("--bf16 trains in bfloat16") and "use float32" in warning
    assert isinstance(cpu_has_native_bf16(), bool)


def test_flags_come_from_cpuinfo_or_the_variable(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    monkeypatch.delenv("SLMQA_CPU_FLAGS")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") is None
    monkeypatch.setenv("SLMQA_CPU_FLAGS", "sse2 amx_bf16")
    assert cpu_flags(cpuinfo) == {"sse2", "amx_bf16"}
    assert cpu_has_native_bf16() and not cpu_has_native_bf16({"avx2"}) and cpu_has_native_bf16({"avx512_bf16"})


@pytest.mark.parametrize("requested, use, device, flags, expected, why", [
    ("auto", "training", "cpu", {"avx2", "avx512_bf16"}, "bf16", "bfloat16 instructions (avx512_bf16)"),
    ("auto", "prediction", "cpu", {"amx_bf16", "avx512_bf16"}, "bf16", "(avx512_bf16, amx_bf16)"),
    ("auto", "training", "cpu", {"avx2", "avx512f"}, "fp32", "no bfloat16 instructions"),
    ("auto", "prediction", "cpu", set(), "fp32", "no bfloat16 instructions"),
    ("auto", "training", "cuda", {"avx512_bf16"}, "fp32", "auto on cuda"),
    ("fp32", "training", "cpu", {"avx512_bf16"}, "fp32", "asked for"),
    ("bf16", "prediction", "cpu", {"avx2"}, "bf16", "asked for"),
])
def test_auto_picks_bf16_only_on_a_cpu_with_bfloat16_units(requested, use, device, flags, expected, why):
    choice = choose_precision(requested, use, device, flags)
    assert choice.precision == expected and why in choice.why and choice.bf16 == (expected == "bf16")


def test_auto_follows_the_measurement_per_use(monkeypatch):
    monkeypatch.setitem(precision.AUTO_BF16_ON_NATIVE_CPU, "training", False)
    choice = choose_precision("auto", "training", "cpu", {"avx512_bf16"})
    assert choice.precision == "fp32" and "measured no faster" in choice.why
    assert choose_precision("auto", "prediction", "cpu", {"avx512_bf16"}).bf16


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16; got 'fp8'"):
        choose_precision("fp8", "training", "cpu", set())
