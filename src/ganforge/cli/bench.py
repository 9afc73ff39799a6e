"""`ganforge bench`: training and sampling images/s, against the fixed textbook DCGAN loop."""
from __future__ import annotations

import argparse
import json

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="measure training and sampling speed against a textbook DCGAN loop",
        description="Median images/s over repeated timed blocks after warm-up, for ganforge "
                    "and for benchmarks/reference_dcgan.py (same architecture and batch).")
    parser.add_argument("--model", default="dcgan", help="[default: dcgan]")
    parser.add_argument("--resolution", type=int, default=32, help="[default: 32]")
    parser.add_argument("--channels", type=int, default=1, help="[default: 1]")
    parser.add_argument("--batch-size", type=int, default=64, help="[default: 64]")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block [default: 20]")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first [default: 5]")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; the median is reported [default: 3]")
    parser.add_argument("--device", default="auto", type=options.device, help="[default: auto]")
    parser.add_argument("--precision", default="auto", help="fp32, bf16, fp16, auto [default: auto, as train.precision]")
    parser.add_argument("--channels-last", default="auto", help="auto, yes, no [default: auto]")
    parser.add_argument("--sample-n", type=int, default=10000, help="images per sampling run (0: skip) [default: 10000]")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference loop")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="any config key for ganforge's side, e.g. --set train.compile=yes (repeatable)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the result as JSON")


def run(args: argparse.Namespace) -> int:
    from ..bench import benchmark, format_bench
    from ..config import parse_override
    from ..errors import ConfigError

    for key in ("steps", "repeats", "batch_size"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(args, key)}: must be at least 1")
    result = benchmark(args.model, args.resolution, args.channels, args.batch_size, args.steps,
                       args.warmup, args.repeats, args.device, args.precision, args.channels_last,
                       args.sample_n, not args.no_reference,
                       settings=dict(parse_override(text) for text in args.set))
    print(format_bench(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0
