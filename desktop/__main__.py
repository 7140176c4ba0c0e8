"""Entry point for `python -m desktop`, the `hearth` script and the frozen app."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # The worker mode is hidden: the GUI/CLI start it as a child process (DESIGN section 2).
    if args and args[0] == "engine-worker":
        from desktop.engine_worker.main import main as worker_main

        return worker_main(args[1:])
    from desktop.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
