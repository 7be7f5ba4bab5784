"""`python -m core models [--json]` lists the model store; `python -m core models fetch NAME|all` fills it."""
import json
import sys

from . import command


def _setup(ap):
    ap.add_argument("action", nargs="?", choices=("list", "fetch"), default="list",
                    help="list (default) or fetch")
    ap.add_argument("names", nargs="*", metavar="NAME", help="models to fetch, or 'all'")
    ap.add_argument("--json", action="store_true", help="machine-readable listing")
    ap.add_argument("--force", action="store_true", help="fetch again even when present and intact")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _run(args) -> int:
    from ..errors import UserError
    from ..models import store

    if args.action == "list":
        rows = store.status()
        if args.json:
            json.dump({"cache": str(store.cache_dir()), "models": rows}, sys.stdout, indent=1)
            sys.stdout.write("\n")
            return 0
        print(f"model store: {store.cache_dir()}")
        for r in rows:
            use = "commercial use ok" if r["commercial"] else "NON-COMMERCIAL"
            size = f"{r['bytes'] / 2**20:.1f} MB" if r["bytes"] else "-"
            print(f"{r['name']:<26} {r['state']:<8} {size:>9}  {r['licence']} ({use})  {r['title']}")
        return 0
    if not args.names:
        raise UserError("name the models to fetch, or 'all' (see 'python -m core models')", "usage")
    names = [e.name for e in store.entries()] if "all" in args.names else args.names
    for n in names:
        store.entry(n)  # unknown names fail before any download

    def say(msg):
        if not args.quiet:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    before = {n: store.model_state(store.entry(n)) for n in names}
    failed = []
    for n in names:  # one model that cannot be had (offline, say) must not keep the others out
        try:
            store.fetch(n, progress=say, force=args.force)
        except UserError as exc:
            failed.append(f"{n}: {exc}")
            continue
        say(f"{n}: {'already present' if before[n] == 'present' and not args.force else 'installed'}")
    if failed:
        raise UserError(f"{len(failed)} of {len(names)} model(s) could not be fetched: " + "; ".join(failed),
                        "download-failed")
    return 0


command("models", "list the model store (present / missing / corrupt, licence) or fetch models", _setup, _run)
