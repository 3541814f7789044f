#!/usr/bin/env bash
# Idempotent set-up of a taxrisk development/run environment on Debian (root) with Python 3.11.
#   scripts/setup.sh          the run-time stack (venv from requirements.lock, taxrisk editable)
#   scripts/setup.sh --test   plus what the test suite needs from Debian
# Re-running is cheap: pip runs again only when requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# Debian packages: CJK font for plots and reports (Chinese indicator names), and what
# WeasyPrint needs for PDF reports. With --test: PostgreSQL (the store's tests start their own
# cluster) and Chromium (the pages' browser tests; never `playwright install`).
# Java for Apache Spark (TAXRISK_ENGINE=spark and the suite's Spark tests; pyspark is in the
# lock): Debian's headless JRE (17 on Debian 12), unless a java is already on the PATH.
apt_pkgs=(fonts-wqy-microhei libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0)
command -v java >/dev/null 2>&1 || apt_pkgs+=(default-jre-headless)
if [[ "${1:-}" == "--test" ]]; then
    apt_pkgs+=(postgresql chromium)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "setup: apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: warning: not root, cannot install ${missing[*]} (Chinese text in plots may show as boxes)" >&2
    fi
fi

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup: Python 3.11 is required, $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.taxrisk-lock.sha256
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing requirements.lock into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install -q --disable-pip-version-check pip==26.3 setuptools==84.2.1 wheel==0.48.0
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" >"$stamp"
fi
if ((want_test)); then
    :  # the suite's Debian needs are installed above; later issues add PostgreSQL and Chromium here
fi
java -version >/dev/null 2>&1 || echo "setup: warning: no java: the Spark engine and its tests cannot run" >&2
echo "setup: ready ($(.venv/bin/taxrisk --help >/dev/null 2>&1 && echo 'taxrisk CLI ok' || echo 'taxrisk CLI not importable yet'))"
