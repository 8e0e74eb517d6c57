#!/usr/bin/env bash
# Submit tonight's sweep to a running Ray cluster with `ray job submit` (Ray's Jobs API, which
# needs ray[default] where you run this and on the head). Install with cron, e.g.:
#   0 2 * * *  RAY_ADDRESS=http://HEAD:8265 /path/to/repo/deploy/cron/nightly.sh >> ~/nightly.log 2>&1
# Token authentication: if the head was started with RAY_AUTH_MODE=token, this machine needs
# the same token (in ~/.ray/auth_token, or RAY_AUTH_TOKEN) and RAY_AUTH_MODE=token.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${RAY_ADDRESS:?set RAY_ADDRESS to the head's Jobs API, e.g. http://HEAD:8265}"
: "${RUNNER_STORAGE:=/mnt/shared/ray_results}"
: "${MLFLOW_TRACKING_URI:=http://mlflow:5000}"
sweep="nightly-$(date +%Y-%m-%d)"   # the same id resumes, or does nothing if it finished
exec ray job submit --address "$RAY_ADDRESS" --working-dir . --submission-id "$sweep" \
  -- python -m runner +experiment="${EXPERIMENT:-fashion_zoo}" \
     cluster=address cluster.address=auto \
     runner.storage_path="$RUNNER_STORAGE" runner.sweep_id="$sweep" \
     tracking.uri="$MLFLOW_TRACKING_URI" "$@"
