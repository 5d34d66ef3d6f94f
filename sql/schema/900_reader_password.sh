#!/usr/bin/env bash
# Docker Compose only: the official postgres image runs the *.sh files of
# docker-entrypoint-initdb.d on first start (tripstream's own loader applies *.sql only).
# Gives the read-only role of 005_roles.sql the password READER_PASSWORD from .env, so
# `tripstream query` and the notebook connect as it over TCP.
set -euo pipefail
echo "ALTER ROLE tripstream_reader PASSWORD :'pw';" |
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v pw="${READER_PASSWORD:?set READER_PASSWORD in .env}"
