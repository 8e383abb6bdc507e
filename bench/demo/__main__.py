"""`python -m bench.demo pretrain`: re-create the bundled demo CLIP checkpoint (seeded, ~10 min on 2 cores)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from .pretrain import PretrainConfig, default_output, pretrain, save_weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.demo")
    sub = p.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="contrastive pre-training of ltbench-demo on the source styles")
    for field in dataclasses.fields(PretrainConfig):
        pre.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    pre.add_argument("--out", type=Path, default=default_output(), help="safetensors file to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = PretrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)})
    model, summary = pretrain(config)
    save_weights(model, args.out, config, summary)
    print(json.dumps(summary))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
