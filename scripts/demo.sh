#!/usr/bin/env bash
# The README's first command (`make demo`): a demo city end to end, then the service.
# Generates a synthetic city, validates it, builds features, trains, scores and dispatches,
# evaluates, creates demo users (their tokens are printed once) and serves the API and the
# pages on http://HOST:PORT until Ctrl-C. Everything goes to a demo workspace of its own
# (TAXRISK_WORKSPACE, default taxrisk-demo/), started afresh each time.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DEMO_DIR:=data/demo}" "${DEMO_TAXPAYERS:=5000}" "${DEMO_MONTHS:=36}" "${DEMO_SEED:=1}"
: "${DEMO_END:=2025-12}" "${DEMO_ASOF:=2025-12-31}" "${DEMO_TRIALS:=10}"
: "${DEMO_HOST:=127.0.0.1}" "${DEMO_PORT:=8000}" "${DEMO_SERVE:=1}"
export TAXRISK_WORKSPACE=${TAXRISK_WORKSPACE:-taxrisk-demo}
export MLFLOW_DISABLE_TELEMETRY=true MPLBACKEND=Agg MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
tr=.venv/bin/taxrisk
rm -rf "$TAXRISK_WORKSPACE"
step() { printf '\n== %s\n' "$*" >&2; }
step "1/7 synthetic city: $DEMO_TAXPAYERS taxpayers x $DEMO_MONTHS months -> $DEMO_DIR"
$tr demo-data --out "$DEMO_DIR" --taxpayers "$DEMO_TAXPAYERS" --months "$DEMO_MONTHS" \
    --seed "$DEMO_SEED" --end "$DEMO_END"
step "2/7 validate"
$tr validate "$DEMO_DIR" --as-of "$DEMO_ASOF"
step "3/7 features"
$tr features "$DEMO_DIR" --as-of "$DEMO_ASOF" --out "$TAXRISK_WORKSPACE/features.parquet"
step "4/7 train ($DEMO_TRIALS Optuna trials)"
$tr train "$DEMO_DIR" --as-of "$DEMO_ASOF" --trials "$DEMO_TRIALS"
step "5/7 score and dispatch"
$tr score "$DEMO_DIR" --as-of "$DEMO_ASOF" --out "$TAXRISK_WORKSPACE/ranking.csv"
step "6/7 evaluate against truth/"
$tr evaluate "$DEMO_DIR" --as-of "$DEMO_ASOF" --ranking "$TAXRISK_WORKSPACE/ranking.csv"
step "7/7 demo users (tokens are shown once)"
county=$(.venv/bin/python -c "import pandas as pd, sys; u = pd.read_parquet(sys.argv[1]); \
print(u.loc[u['level'] == 'county', 'unit_id'].sort_values().iloc[0])" "$DEMO_DIR/units.parquet")
admin=$($tr users add demo-admin --role admin)
analyst=$($tr users add demo-analyst --role analyst)
selector=$($tr users add demo-selector --role selector --unit "$county")
url="http://$DEMO_HOST:$DEMO_PORT"
cat >&2 <<MSG

taxrisk demo is ready: $url
  pages     $url/web/      (sign in with a token below; 中文, English switch at the top)
  API       $url/api/v1    interactive docs $url/docs
  selector  of unit $county: $selector
  analyst   $analyst
  admin     $admin
  e.g. curl -H "Authorization: Bearer $selector" $url/api/v1/units/$county/cases?limit=5
MSG
if [[ "$DEMO_SERVE" == 1 ]]; then
    exec $tr serve --host "$DEMO_HOST" --port "$DEMO_PORT"
fi
