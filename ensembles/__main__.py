"""``python -m ensembles ...``: a thin entry point over the runner's re-ensembling command
(``runner/reensemble.py``), which reads the members from MLflow; the ensembles package itself
stays free of MLflow."""

import sys

if __name__ == "__main__":
    from runner.reensemble import main

    sys.exit(main())
