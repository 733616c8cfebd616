"""Run the celeriac command line: ``python -m celeriac``."""

from celeriac.cli import main

main()
