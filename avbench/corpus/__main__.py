"""``python -m avbench.corpus``: generate a corpus (the command line of avbench.corpus.generate)."""

from avbench.corpus.generate import main

if __name__ == "__main__":
    raise SystemExit(main())
