#!/usr/bin/env python
"""Generate a deterministic SQuAD-format mock dataset for a domain (train/validation/test).

    python mock_dataset.py --domain equipment_manual --output_dir data/mock
    python mock_dataset.py --domain slmqa/mock/domains/example_domain.json --impossible_ratio 0.33
    python mock_dataset.py --list_domains

Domains are spec files: the built-in ones are slmqa/mock/domains/<name>.json; the format is
described in slmqa/mock/spec.py and docs/mock-data.md. Same seed and options, same files.
"""

from __future__ import annotations

import argparse
import logging
import time

from slmqa.logs import get_logger, setup_logging
from slmqa.mock.generate import (
    DEFAULT_SIZES,
    FORMATS,
    LONG_CONTEXT_MIN_WORDS,
    generate_splits,
    summarize,
    write_dataset,
)
from slmqa.mock.spec import BUILTIN_DOMAINS, load_domain

logger = get_logger("mock_dataset")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", default="equipment_manual",
                        help="Built-in domain name (see --list_domains) or path to a JSON/YAML spec file.")
    parser.add_argument("--list_domains", action="store_true", help="List the built-in domains and exit.")
    parser.add_argument("--output_dir", default="data/mock", help="Directory for {split}.json / {split}.jsonl.")
    for split in DEFAULT_SIZES:
        parser.add_argument(f"--{split}_size", type=int, default=DEFAULT_SIZES[split],
                            help=f"Questions in the {split} split (0 skips it; default {DEFAULT_SIZES[split]}).")
    parser.add_argument("--impossible_ratio", type=float, default=0.0,
                        help="Share of unanswerable questions, 0-1 (0 for SQuAD v1-style data, e.g. 0.33 for v2).")
    parser.add_argument("--long_context_ratio", type=float, default=0.1,
                        help=f"Share of contexts padded to >= {LONG_CONTEXT_MIN_WORDS} words (> 384 tokens).")
    parser.add_argument("--min_facts", type=int, default=4, help="Fewest fact sentences in a normal context.")
    parser.add_argument("--max_facts", type=int, default=8, help="Most fact sentences in a normal context.")
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json: {version, data: [flat records]}; jsonl: one flat record per line; "
                             "squad: official nested articles/paragraphs/qas layout.")
    parser.add_argument("--seed", type=int, default=42, help="Random seed; same seed and options give identical files.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Returns 0 on success, 2 on a bad domain spec or option."""
    args = build_parser().parse_args(argv)
    setup_logging(logging.INFO)
    if args.list_domains:
        for name in BUILTIN_DOMAINS:
            print(f"{name:<18} {load_domain(name)['description']}")
        return 0
    sizes = {split: getattr(args, f"{split}_size") for split in DEFAULT_SIZES if getattr(args, f"{split}_size")}
    try:
        started = time.perf_counter()
        spec, splits, types = generate_splits(args.domain, sizes, args.seed, args.impossible_ratio,
                                              args.long_context_ratio, args.min_facts, args.max_facts)
        seconds = time.perf_counter() - started
        paths = write_dataset(splits, args.output_dir, args.format, spec["name"])
    except ValueError as err:
        logger.error("%s", err)
        return 2
    print(summarize(splits, types, seconds))
    for split, path in paths.items():
        logger.info("wrote %d %s records to %s", len(splits[split]), split, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
