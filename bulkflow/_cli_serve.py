"""``bulkflow serve``: the emulator on 127.0.0.1, with its connectors."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

import anyio

from bulkflow._cli import EXIT_OK, _port, _positive, _say, _secret
from bulkflow._exceptions import UsageError


def add_serve(commands: Any, common: argparse.ArgumentParser) -> None:
    from bulkflow.emulator import DEMO_CODE

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the local 1.18 emulator",
        description=(
            "Serve a catalog on 127.0.0.1 as Sales Layer API 1.18 does: signed "
            "requests, clock checks, pages with signed next_page tokens, refresh "
            "and update runs with one-shot deletions. Prints its URL and the "
            "export connector's code, then serves until Ctrl-C."
        ),
        epilog=(
            "examples:\n"
            "  bulkflow serve --catalog luma --port 8018\n"
            "  bulkflow serve --catalog synthetic:200000 --seed 7 --page-size 50000\n"
            "  bulkflow serve --catalog luma --state ./emu   # keeps changes\n\n"
            f"Without --secret or --secret-env, the connector {DEMO_CODE} uses the\n"
            "public demo secret (see the README): fine for a local emulator only."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--catalog",
        default="luma",
        help="luma (the real Luma sample catalog), synthetic:N (N generated "
        "items) or empty (default: luma)",
    )
    serve.add_argument("--seed", type=int, default=0, help="synthetic catalog seed")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    serve.add_argument(
        "--state",
        type=Path,
        help="keep the catalog and its change log in DIR across restarts "
        "(loaded from --catalog the first time)",
    )
    serve.add_argument(
        "--page-size",
        type=_positive,
        help="serve pages of N rows whatever the request asks (default: the "
        "request's pagination, rounded as the service does)",
    )
    serve.add_argument(
        "--exact-pages",
        action="store_true",
        help="do not round the requested pagination (pages of 1 or 7 rows)",
    )
    serve.add_argument("--code", default=DEMO_CODE, help="export connector code")
    serve.add_argument("--secret", help="export connector secret (visible in ps)")
    serve.add_argument(
        "--secret-env", metavar="VAR", help="read the secret from this variable"
    )
    serve.add_argument(
        "--token-ttl", type=int, default=1800, help="next_page lifetime, seconds"
    )
    serve.add_argument(
        "--import-code", help="also serve an import connector with this code"
    )
    serve.add_argument("--import-secret", help="its secret (visible in ps)")
    serve.add_argument(
        "--import-secret-env", metavar="VAR", help="read the import secret from VAR"
    )
    serve.add_argument(
        "--rate-limit",
        metavar="R",
        help="the import connector's budget, e.g. 5/s; past it, API error 10",
    )
    serve.add_argument(
        "--bom", action="store_true", help="start every body with a UTF-8 BOM"
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="switch a fault on, e.g. reset:page=2, http_429:request=1:"
        "retry_after=5, api_error:page=3:code=14:times=2, truncate:page=2, "
        "slow:page=1:delay=2, http_503:page=4 (repeatable)",
    )
    serve.set_defaults(handler=_serve)


# -- serve --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    return anyio.run(_serve_async, args)


async def _serve_async(args: argparse.Namespace) -> int:
    from bulkflow.emulator import (
        DEMO_SECRET,
        CatalogStore,
        EmulatorConfig,
        catalog_source,
        open_emulator,
    )
    from bulkflow.emulator._faults import parse_fault

    secret = _secret(args.secret_env, flag="--secret-env") if args.secret_env else None
    secret = secret or args.secret or DEMO_SECRET
    store = CatalogStore.open(args.state)
    try:
        if not store.loaded:
            source = catalog_source(args.catalog, seed=args.seed)
            started = time.monotonic()
            count = store.load(source)
            _say(
                args,
                f"loaded {args.catalog}: {count:,} items in "
                f"{time.monotonic() - started:.1f} s",
            )
        store.put_connector(args.code, secret, kind="export", options={})
        if args.import_code:
            _add_import_connector(args, store)
        config = EmulatorConfig(
            round_pages=not args.exact_pages,
            page_size=args.page_size,
            token_ttl=args.token_ttl,
            bom=args.bom,
            faults=tuple(parse_fault(spec) for spec in args.fault),
        )
        async with open_emulator(
            store, config=config, host=args.host, port=args.port
        ) as url:
            print(f"url: {url}", flush=True)
            print(f"export connector: {args.code}", flush=True)
            if args.import_code:
                print(f"import connector: {args.import_code}", flush=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
    finally:
        store.close()
    return EXIT_OK


def _add_import_connector(args: argparse.Namespace, store: Any) -> None:
    from bulkflow.emulator._imports import add_import_connector

    secret = args.import_secret
    if args.import_secret_env:
        secret = _secret(args.import_secret_env, flag="--import-secret-env")
    if not secret:
        raise UsageError("--import-code needs --import-secret-env (or --import-secret)")
    add_import_connector(store, args.import_code, secret, args.rate_limit)
