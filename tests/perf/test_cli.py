import pytest

from bench.perf import cli
from bench.perf.loader import LoaderConfig
from bench.perf.regimes import PerfConfig

BOUNDS = {"--num-classes": (2, 2**16), "--batch-size": (1, 2**20), "--eval-batch-size": (1, 2**20),
          "--steps": (1, 10_000), "--warmup": (0, 10_000), "--probe-images": (1, 2**20),
          "--loader-images": (0, 2**16), "--loader-workers": (0, 1024)}


class Measured(Exception):
    """Raised in place of the measurement: the options parsed into this config."""


def _parsed(monkeypatch, argv: list[str]) -> PerfConfig:
    def run(config):
        raise Measured(config)

    monkeypatch.setattr(cli, "run", run)
    with pytest.raises(Measured) as measured:
        cli.main(["--device", "cpu", *argv])
    return measured.value.args[0]


@pytest.mark.parametrize("option", BOUNDS)
@pytest.mark.parametrize("which", ["below", "above", "negative", "not a number"])
def test_a_value_out_of_range_stops_at_parse_time_naming_the_option(option, which, capsys):
    low, high = BOUNDS[option]
    value = {"below": str(low - 1), "above": str(high + 1), "negative": "-5", "not a number": "1e3"}[which]
    with pytest.raises(SystemExit) as exc:
        cli.main([option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    expected = "expected an integer" if which == "not a number" else f"must be >= {low} and <= {high}, got {value}"
    assert f"argument {option}: {expected}" in err


def test_the_bounds_themselves_parse(monkeypatch):
    low = _parsed(monkeypatch, ["--num-classes", "2", "--batch-size", "1", "--eval-batch-size", "1", "--steps", "1",
                                "--warmup", "0", "--probe-images", "1", "--loader-images", "0"])
    assert (low.num_classes, low.batch_size, low.eval_batch_size, low.steps, low.warmup, low.probe_images,
            low.loader) == (2, 1, 1, 1, 0, 1, None)
    high = _parsed(monkeypatch, ["--num-classes", str(2**16), "--batch-size", "128", "--eval-batch-size", str(2**20),
                                 "--steps", "10000", "--warmup", "10000", "--probe-images", str(2**20),
                                 "--loader-images", str(2**16), "--loader-workers", "1024"])
    assert (high.num_classes, high.eval_batch_size, high.steps, high.warmup, high.probe_images) == (
        2**16, 2**20, 10_000, 10_000, 2**20)
    assert high.loader == LoaderConfig(2**16, 128, None, None, 1024)


@pytest.mark.parametrize("images", ["1", "128"])
def test_a_loader_measurement_without_a_second_batch_is_refused_before_the_model_is_built(images, monkeypatch,
                                                                                         capsys):
    monkeypatch.setattr(cli, "resolve_device", lambda name: pytest.fail("reached the device"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["--loader-images", images, "--batch-size", "128"])
    assert exc.value.code == 2
    assert (f"--loader-images {images}: the loader measurement times the batches after the first, so it needs more "
            f"than --batch-size 128 images; give more, or 0 to skip it") in capsys.readouterr().err
