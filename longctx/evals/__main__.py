"""``python -m longctx.evals`` is the ``evals`` command."""
from longctx.evals.cli import main

main()
