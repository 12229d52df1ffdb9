#!/usr/bin/env bash
# Runs the whole test suite: lint, then pytest. Uses PostgreSQL and Redis when DATABASE_URL and
# CELERY_BROKER_URL are set, SQLite and in-process tasks when not.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
if ! command -v chromium > /dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium > /dev/null
fi
ruff check .
ruff format --check .
python manage.py makemigrations --check --dry-run > /dev/null
python -m pytest "$@"
