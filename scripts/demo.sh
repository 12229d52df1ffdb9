#!/usr/bin/env bash
# Sets everything up and runs the console with demo data on SQLite, tasks in-process.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
python manage.py migrate --noinput
python manage.py seed_demo --if-empty
echo
echo "Moderation Console: http://${HOST:-127.0.0.1}:${PORT:-8000}/"
exec python manage.py runserver "${HOST:-127.0.0.1}:${PORT:-8000}"
