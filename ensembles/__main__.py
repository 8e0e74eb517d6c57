"""``python -m ensembles ...``: a thin entry point over the runner's re-ensembling command
(``runner/reensemble.py``), which reads the members from MLflow; the ensembles package itself
stays free of MLflow."""

import sys

if __name__ == "__main__":
    from runner import process_env

    process_env.apply()  # before MLflow is imported: bounded retries, no "View run" URLs
    from runner.reensemble import main

    sys.exit(main())
