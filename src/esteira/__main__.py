"""`python -m esteira`: the same command line as `esteira`, for child processes that must
run under this interpreter (a service the CD gates start)."""

from esteira.cli import main

main()
