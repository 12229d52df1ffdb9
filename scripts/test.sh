#!/usr/bin/env bash
# Runs the whole test suite: lint, then pytest. Uses PostgreSQL and Redis when DATABASE_URL and
# CELERY_BROKER_URL are set, SQLite and in-process tasks when not.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ruff check .
ruff format --check .
python manage.py makemigrations --check --dry-run > /dev/null
python -m pytest "$@"
