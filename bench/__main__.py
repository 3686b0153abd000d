"""``make bench`` (``python -m bench``): the stream and component benchmarks.

Tooling, not product: this folder is not in the wheel. It runs against the dev
stack (or whatever KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name) with a model from
TRIALWATCH_MODEL_DIR, trained first when there is none.
"""

from __future__ import annotations

import argparse
import asyncio

from trialwatch.streams import settings as settings_module


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="input events")
    parser.add_argument("--patients", type=int, default=20_000, help="distinct patients")
    parser.add_argument("--repeats", type=int, default=3, help="runs per pipeline (median)")
    parser.add_argument("--quick", action="store_true", help="a small run for a smoke check")
    parser.add_argument(
        "--components",
        action="store_true",
        help="only the component benchmarks that need no broker (codec, state codec, simulator, "
        "scorer, backfill)",
    )
    parser.add_argument(
        "--restore",
        default="",
        help="instead: state size, RSS and restore time for these patient counts, "
        "e.g. 100000,1000000",
    )
    parser.add_argument(
        "--apply-batches",
        default="",
        help="instead: CPU us per record of the restore's RocksDB write for these "
        "recovery buffer sizes, e.g. 100,1000,10000 (no broker)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    s = settings_module.load()
    if args.apply_batches:
        from bench.restore import apply_batch_bench

        apply_batch_bench([int(n.replace("_", "")) for n in args.apply_batches.split(",")])
        return
    if args.restore:
        from bench.restore import run_restore_bench

        sizes = [int(n.replace("_", "")) for n in args.restore.split(",") if n.strip()]
        asyncio.run(run_restore_bench(s, sizes))
        return
    if args.components:
        from bench.stream import run_components

        run_components(s, events=args.events, patients=args.patients, repeats=args.repeats,
                       quick=args.quick)  # fmt: skip
        return
    from bench.stream import run_bench

    asyncio.run(
        run_bench(
            s, events=args.events, patients=args.patients, repeats=args.repeats, quick=args.quick
        )
    )


if __name__ == "__main__":
    main()
