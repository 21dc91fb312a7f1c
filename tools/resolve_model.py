"""Print the pinned `runs:/` URI a model URI resolves to (the deploy workflow's step).

    python -m tools.resolve_model mlflow-experiment:cats-dogs-other
    runs:/<run_id>/model/data/model.keras

Same rules as the predictor (predictor/sources): pinning the run at deploy time makes a
rollout reproducible, where `mlflow-experiment:` in the ConfigMap would follow new runs on
every restart.
"""

from __future__ import annotations

import sys

from predictor.sources import ModelSourceError, SourceUnavailable, mlflow_source


def main(uri: str) -> int:
    try:
        artifact = mlflow_source.resolve(uri)
    except (ModelSourceError, SourceUnavailable) as exc:
        print(f"cannot resolve {uri}: {exc}", file=sys.stderr)
        return 1
    print(f"runs:/{artifact.run_id}/{artifact.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
