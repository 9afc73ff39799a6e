"""The benchmark harness: it runs and reports; speed itself is measured by the bench, not here."""
import math

import pytest

import ganforge
from ganforge import bench
from ganforge.config import ModelConfig
from ganforge.models import DataShape, build_models
from ganforge.training import device

TINY = dict(steps=2, warmup=1, repeats=1, sample_n=50, resolution=32, batch_size=16, device="cpu")


def reference_module():
    from ganforge import reference_dcgan
    return reference_dcgan


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_benchmark_reports_speeds_and_ratio(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = bench.benchmark(**TINY)
    for key in ("train_images_per_s", "train_step_ms", "reference_images_per_s", "ratio",
                "sample_images_per_s", "sample_seconds", "ganforge_params", "reference_params"):
        assert positive(result[key]), (key, result[key])
    # One block each: the ratio is the ratio of the two speeds.
    assert result["ratio"] == pytest.approx(result["train_images_per_s"] / result["reference_images_per_s"])
    assert result["ganforge_params"] == result["reference_params"]
    # auto precision: bf16 where the CPU has bf16 units, fp32 elsewhere
    expected = "bf16" if device.cpu_has_bf16_units() else "fp32"
    assert result["precision"] == expected and result["device"] == "cpu"
    assert all(isinstance(v, (int, float, str)) for v in result.values())
    for key in ("torch", "device_name", "date", "load_avg_before", "peak_memory_kind"):
        assert isinstance(result[key], str) and result[key]
    assert positive(result["threads"]) and positive(result["cpu_count"])
    table = bench.format_bench(result)
    assert "ganforge / reference" in table and "sampling" in table
    assert "WARNING" in bench.format_bench({**result, "other_cpu_load": 1.0})
    assert "WARNING" not in bench.format_bench({**result, "other_cpu_load": 0.0,
                                                "other_cpu_load_sampling": float("nan")})
    # Nothing permanent: no run directory here, the temporary one is gone.
    assert list(tmp_path.iterdir()) == [tmp_path / "tmp"]
    assert not list((tmp_path / "tmp").glob("ganforge-bench-*"))


def test_benchmark_without_the_reference():
    result = bench.benchmark(**{**TINY, "sample_n": 0, "reference": False})
    assert "skipped" in result["reference_note"]
    assert "ratio" not in result and "reference_images_per_s" not in result
    assert positive(result["train_images_per_s"])
    assert "reference=False" in bench.format_bench(result)


def test_benchmark_rejects_bad_settings():
    with pytest.raises(ganforge.ConfigError, match="repeats"):
        bench.benchmark(repeats=0)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_reference_has_ganforge_dcgan_widths(resolution, channels):
    netG, netD = reference_module().build_models(resolution, channels, ngf=64, ndf=64, nz=100)
    ours = build_models(ModelConfig(name="dcgan"), DataShape(resolution, channels))
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(netG) == count(ours["G"])
    assert count(netD) == count(ours["D"])


def test_reference_loop_runs():
    result = reference_module().run_reference(resolution=32, channels=1, batch_size=8, steps=2,
                                              device="cpu", warmup=0)
    assert len(result["step_times"]) == 2
    assert all(positive(t) for t in result["step_times"])
    assert positive(result["images_per_s"])


def test_cpu_name_keeps_family_and_model():
    """Two CPU generations a VM shows by one name ("AMD EPYC") stay apart in the bench facts."""
    from ganforge.bench import _cpu_name
    zen4 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\n"
    zen5 = "processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
    assert _cpu_name(zen4) == "AMD EPYC (family 25, model 17)"
    assert _cpu_name(zen5) == "AMD EPYC (family 26, model 2)"
    assert _cpu_name("model name\t: Some CPU\n") == "Some CPU"
