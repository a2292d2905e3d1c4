"""The benchmarks' own database and broker queue: created before, removed after."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.services import port_open

REDIS_URL = "redis://127.0.0.1:6379/11"


def redis_reachable(url: str = REDIS_URL) -> bool:
    parts = urlsplit(url)
    return port_open(parts.hostname or "127.0.0.1", parts.port or 6379)


def is_postgres(db: Mapping[str, Any]) -> bool:
    return str(db["ENGINE"]).endswith("postgresql")


def _admin_connection(db: Mapping[str, Any]) -> Any:
    import psycopg

    return psycopg.connect(
        host=str(db["HOST"]),
        port=str(db["PORT"]),
        user=str(db["USER"]),
        password=str(db["PASSWORD"]),
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


def is_mariadb(db: Mapping[str, Any]) -> bool:
    return str(db["ENGINE"]).endswith("mysql")


def _mariadb(db: Mapping[str, Any], statement: str) -> None:
    import pymysql

    conn = pymysql.connect(
        host=str(db["HOST"]),
        port=int(db["PORT"] or 3306),
        user=str(db["USER"]),
        password=str(db["PASSWORD"]),
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def create_database(db: Mapping[str, Any]) -> None:
    """An empty database for this run (a leftover of an aborted run is dropped first)."""
    if is_mariadb(db):
        _mariadb(db, f"DROP DATABASE IF EXISTS `{db['NAME']}`")
        _mariadb(db, f"CREATE DATABASE `{db['NAME']}` CHARACTER SET utf8mb4")
        return
    if not is_postgres(db):
        path = Path(str(db["NAME"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return
    from psycopg import sql

    name = sql.Identifier(str(db["NAME"]))
    with _admin_connection(db) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def drop_database(db: Mapping[str, Any]) -> None:
    if is_mariadb(db):
        _mariadb(db, f"DROP DATABASE IF EXISTS `{db['NAME']}`")
        return
    if not is_postgres(db):
        Path(str(db["NAME"])).unlink(missing_ok=True)
        return
    from psycopg import sql

    with _admin_connection(db) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(str(db["NAME"]))
            )
        )


def describe_database(db: Mapping[str, Any]) -> str:
    from django.db import connection

    if is_mariadb(db):
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0]).split("-")[0]
        return f"MariaDB {version} (database {db['NAME']}, loopback)"
    if is_postgres(db):
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = str(cursor.fetchone()[0]).split()[0]
        return f"PostgreSQL {version} (database {db['NAME']}, loopback)"
    import sqlite3

    return (
        f"SQLite {sqlite3.sqlite_version} (file {db['NAME']}; PostgreSQL unavailable or not chosen)"
    )


def describe_broker(url: str) -> str:
    if url.startswith("redis"):
        import redis

        info = redis.Redis.from_url(url, socket_timeout=5).info("server")
        return f"Redis {info['redis_version']} ({url}, loopback)"
    return f"{url} (in-memory kombu transport: Redis unavailable)"


def purge_queue(url: str, queue: str) -> int:
    """Remove the queue and the messages the checkout published (no worker reads it)."""
    if not url.startswith("redis"):
        return 0
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    length = int(client.llen(queue))
    client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    return length
