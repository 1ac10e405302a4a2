#!/usr/bin/python3
"""Driver scenarios for pg-tenant-proxy, run by psycopg 3 or asyncpg; prints one JSON object of results.

Run with the Debian interpreter (/usr/bin/python3), which has python3-psycopg and python3-asyncpg:
  scenarios.py --driver psycopg|asyncpg --dsn DSN [--set-context TENANT] [--dsn2 DSN --set-context2 TENANT]
               [--only NAME[,NAME...]]
--set-context emulates the proxy's tenant context on a direct connection (session-level set_config);
--proof / --proof2 give the tenant proof the database verifies (app.tenant_proof).
A scenario that raises reports {"error": {"sqlstate": ..., "type": ..., "message": ...}} instead of a result.
"""
import argparse
import asyncio
import datetime
import decimal
import hashlib
import json
import secrets
import sys

SET_CONTEXT_SQL = ("SELECT set_config('app.current_tenant', $1, false), set_config('app.tenant_proof', $2, false), "
                   "set_config('search_path', '\"tenant_' || $1 || '\", public', false)")
PREPARED_REUSE_SQL = "SELECT $1::int + 1 AS n, current_setting('app.current_tenant') AS t"
INTERLEAVED_SQL = ("SELECT current_setting('app.current_tenant') AS t, (SELECT count(*) FROM orders)::int AS orders, "
                   "(SELECT body FROM notes ORDER BY id LIMIT 1) AS note")
PARAM_NAMES = ["i4", "i8", "txt", "b", "num", "bin", "ts", "js", "nul", "big"]
PARAM_TYPES_SQL = ("SELECT $1::int4 AS i4, $2::int8 AS i8, $3::text AS txt, $4::bool AS b, $5::numeric AS num, "
                   "$6::bytea AS bin, $7::timestamptz AS ts, $8::jsonb AS js, $9::text AS nul, $10::text AS big")
PARAM_VALUES = [
    2147483647,
    9007199254740993,
    "h\u00e9llo 'w\u00f6rld' \\ \u2603",
    True,
    decimal.Decimal("12345678901234567890.000000000123"),
    bytes([0, 1, 2, 127, 128, 254, 255, 0x5C, 0x27]),
    datetime.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=datetime.timezone.utc),
    json.dumps({"a": [1, 2, {"b": None}], "s": 'x"y'}),
    None,
    "abcdefghij" * 4000 + "\u20ac",
]
TZ_SQL = "SELECT current_setting('TimeZone') AS tz"
TIMEZONE = "America/New_York"


def norm(v):
    """Same shapes as test/drivers/scenarios.ts normalise(): bytea as \\x hex, timestamps as UTC ISO, long text hashed."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, datetime.datetime):
        s = v.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
        return s.replace("+00:00", "Z")
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
        return str(v)
    if isinstance(v, str) and len(v) > 1000:
        return {"length": len(v), "sha256": hashlib.sha256(v.encode("utf-8")).hexdigest()}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return v


def row_dict(names, values):
    d = dict(zip(names, values))
    if isinstance(d.get("js"), str):  # asyncpg returns jsonb as text
        d["js"] = json.loads(d["js"])
    return norm(d)


def error_info(e):
    code = getattr(e, "sqlstate", None)
    if code is None:
        diag = getattr(e, "diag", None)
        code = getattr(diag, "sqlstate", None)
    return {"sqlstate": code, "type": type(e).__name__, "message": str(e).splitlines()[0] if str(e) else ""}


def new_marker(driver):
    return "drv-%s-%s" % (driver, secrets.token_hex(6))


def strip(marker, bodies):
    return [b[len(marker) + 1:] for b in bodies]


# ---------------------------------------------------------------- psycopg 3

class Psycopg:
    def __init__(self, args):
        import psycopg
        self.psycopg = psycopg
        self.args = args

    def connect(self, second=False):
        dsn, tenant, proof = (self.args.dsn2, self.args.set_context2, self.args.proof2) if second else (self.args.dsn, self.args.set_context, self.args.proof)
        conn = self.psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        if tenant:
            conn.execute(SET_CONTEXT_SQL.replace("$1", "%(t)s").replace("$2", "%(p)s"), {"t": tenant, "p": proof or ""})
        return conn

    def prepared_reuse(self):
        with self.connect() as conn:
            # prepare=True: psycopg prepares it server-side once, then only binds it (100 autocommit transactions).
            return [dict(zip(["n", "t"], conn.execute("SELECT %s::int + 1 AS n, current_setting('app.current_tenant') AS t",
                                                     [i], prepare=True).fetchone())) for i in range(100)]

    def interleaved_tenants(self):
        with self.connect() as a, self.connect(second=True) as g:
            out = []
            for _ in range(20):
                for conn in (a, g):
                    cur = conn.execute(INTERLEAVED_SQL, prepare=True)
                    out.append(dict(zip([c.name for c in cur.description], cur.fetchone())))
            return out

    def param_types(self):
        sql = PARAM_TYPES_SQL
        for i in range(10, 0, -1):
            sql = sql.replace("$%d" % i, "%s")
        with self.connect() as conn:
            return [row_dict(PARAM_NAMES, conn.execute(sql, PARAM_VALUES, prepare=True).fetchone()) for _ in range(2)]

    def savepoints(self):
        m = new_marker("psycopg")
        with self.connect() as conn:
            try:
                ins = "INSERT INTO notes (body) VALUES (%s)"
                with conn.transaction():
                    conn.execute(ins, [m + ":first"], prepare=True)
                    conn.execute("SAVEPOINT a")
                    conn.execute(ins, [m + ":second"], prepare=True)
                    conn.execute("ROLLBACK TO SAVEPOINT a")
                    conn.execute(ins, [m + ":third"], prepare=True)
                rows = conn.execute("SELECT body FROM notes WHERE starts_with(body, %s) ORDER BY id", [m + ":"]).fetchall()
                return strip(m, [r[0] for r in rows])
            finally:
                conn.execute("DELETE FROM notes WHERE starts_with(body, %s)", [m + ":"])

    def pipeline_error(self):
        m = new_marker("psycopg")
        with self.connect() as conn:
            try:
                curs, raised = [], None
                try:
                    # One pipeline, one Sync at its end: the three run as one implicit transaction.
                    with conn.pipeline():
                        curs.append(conn.execute("INSERT INTO notes (body) VALUES (%s) RETURNING 'a'", [m + ":a"]))
                        curs.append(conn.execute("SELECT 1/0"))
                        curs.append(conn.execute("INSERT INTO notes (body) VALUES (%s) RETURNING 'c'", [m + ":c"]))
                except self.psycopg.Error as e:
                    raised = error_info(e)["sqlstate"]
                # Only the first cursor is reported: psycopg raises the error from whichever call reads it first
                # (the third execute or the pipeline's exit), so whether the third cursor exists depends on timing.
                first = {"ok": [r[0] for r in curs[0].fetchall()]}
                rows = conn.execute("SELECT body FROM notes WHERE starts_with(body, %s) ORDER BY id", [m + ":"]).fetchall()
                after = conn.execute("SELECT current_setting('app.current_tenant')").fetchone()[0]
                return {"raised": raised, "first": first, "persisted": strip(m, [r[0] for r in rows]), "after": after}
            finally:
                conn.execute("DELETE FROM notes WHERE starts_with(body, %s)", [m + ":"])

    def session_timezone(self):
        with self.connect() as conn:
            conn.execute("SET TimeZone = '%s'" % TIMEZONE)
            autocommit = conn.execute(TZ_SQL, prepare=True).fetchone()[0]
            with conn.transaction():
                in_tx = conn.execute(TZ_SQL, prepare=True).fetchone()[0]
            return {"autocommit": autocommit, "inTx": in_tx}


# ---------------------------------------------------------------- asyncpg

class Asyncpg:
    def __init__(self, args):
        import asyncpg
        self.asyncpg = asyncpg
        self.args = args

    async def connect(self, second=False):
        dsn, tenant, proof = (self.args.dsn2, self.args.set_context2, self.args.proof2) if second else (self.args.dsn, self.args.set_context, self.args.proof)
        conn = await self.asyncpg.connect(dsn, timeout=10)
        if tenant:
            await conn.execute(SET_CONTEXT_SQL, tenant, proof or "")
        return conn

    async def prepared_reuse(self):
        conn = await self.connect()
        try:
            stmt = await conn.prepare(PREPARED_REUSE_SQL)  # one named server-side statement, executed 100 times
            out = []
            for i in range(100):
                r = await stmt.fetchrow(i) if i % 2 == 0 else await conn.fetchrow(PREPARED_REUSE_SQL, i)  # statement cache
                out.append(dict(r))
            return out
        finally:
            await conn.close()

    async def interleaved_tenants(self):
        a, g = await self.connect(), await self.connect(second=True)
        try:
            out = []
            for _ in range(20):
                out.append(dict(await a.fetchrow(INTERLEAVED_SQL)))
                out.append(dict(await g.fetchrow(INTERLEAVED_SQL)))
            return out
        finally:
            await a.close()
            await g.close()

    async def param_types(self):
        conn = await self.connect()
        try:
            stmt = await conn.prepare(PARAM_TYPES_SQL)
            return [row_dict(PARAM_NAMES, list(await stmt.fetchrow(*PARAM_VALUES))) for _ in range(2)]
        finally:
            await conn.close()

    async def savepoints(self):
        m = new_marker("asyncpg")
        conn = await self.connect()
        try:
            ins = "INSERT INTO notes (body) VALUES ($1)"
            async with conn.transaction():
                await conn.execute(ins, m + ":first")
                await conn.execute("SAVEPOINT a")
                await conn.execute(ins, m + ":second")
                await conn.execute("ROLLBACK TO SAVEPOINT a")
                await conn.execute(ins, m + ":third")
            rows = await conn.fetch("SELECT body FROM notes WHERE starts_with(body, $1) ORDER BY id", m + ":")
            return strip(m, [r[0] for r in rows])
        finally:
            await conn.execute("DELETE FROM notes WHERE starts_with(body, $1)", m + ":")
            await conn.close()

    async def pipeline_error(self):
        m = new_marker("asyncpg")
        conn = await self.connect()
        try:
            raised = None
            try:
                # executemany pipelines Bind/Execute per row with one Sync at the end: atomic, the middle row divides by zero.
                await conn.executemany("INSERT INTO notes (body) VALUES ($1 || ':' || (1 / $2::int)::text)",
                                       [(m + ":a", 1), (m + ":b", 0), (m + ":c", 1)])
            except self.asyncpg.PostgresError as e:
                raised = e.sqlstate
            rows = await conn.fetch("SELECT body FROM notes WHERE starts_with(body, $1) ORDER BY id", m + ":")
            after = await conn.fetchval("SELECT current_setting('app.current_tenant')")
            return {"raised": raised, "persisted": strip(m, [r[0] for r in rows]), "after": after}
        finally:
            await conn.execute("DELETE FROM notes WHERE starts_with(body, $1)", m + ":")
            await conn.close()

    async def pool_release(self):
        # asyncpg's Pool resets a connection on release ("SELECT pg_advisory_unlock_all(); CLOSE ALL;
        # UNLISTEN *; RESET ALL;"): it must go through, and the next acquire still sees its tenant.
        dsn, tenant, proof = self.args.dsn, self.args.set_context, self.args.proof

        async def setup(conn):  # direct only: RESET ALL clears the context the test itself set
            if tenant:
                await conn.execute(SET_CONTEXT_SQL, tenant, proof or "")

        pool = await self.asyncpg.create_pool(dsn, min_size=1, max_size=1, setup=setup, timeout=10)
        try:
            out = []
            for i in range(5):
                async with pool.acquire() as conn:
                    out.append(dict(await conn.fetchrow(PREPARED_REUSE_SQL, i)))
            return out
        finally:
            await pool.close()

    async def session_timezone(self):
        conn = await self.connect()
        try:
            await conn.execute("SET TimeZone = '%s'" % TIMEZONE)
            autocommit = await conn.fetchval(TZ_SQL)
            async with conn.transaction():
                in_tx = await conn.fetchval(TZ_SQL)
            return {"autocommit": autocommit, "inTx": in_tx}
        finally:
            await conn.close()


SCENARIOS = ["prepared_reuse", "interleaved_tenants", "param_types", "savepoints", "pipeline_error", "session_timezone", "pool_release"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--driver", required=True, choices=["psycopg", "asyncpg"])
    p.add_argument("--dsn", required=True)
    p.add_argument("--set-context", dest="set_context")
    p.add_argument("--dsn2", help="the other tenant, for interleaved_tenants (default: --dsn)")
    p.add_argument("--set-context2", dest="set_context2")
    p.add_argument("--proof", help="the tenant proof for --set-context (app.tenant_proof)")
    p.add_argument("--proof2", help="the tenant proof for --set-context2")
    p.add_argument("--only", help="comma-separated scenario names (default: all)")
    args = p.parse_args()
    args.dsn2 = args.dsn2 or args.dsn
    names = args.only.split(",") if args.only else SCENARIOS
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error("unknown scenario(s): %s" % ", ".join(unknown))

    runner = Psycopg(args) if args.driver == "psycopg" else Asyncpg(args)
    results = {}
    for name in names:
        try:
            r = getattr(runner, name)()
            if asyncio.iscoroutine(r):
                r = asyncio.run(asyncio.wait_for(r, 60))
            results[name] = norm(r)
        except Exception as e:  # noqa: BLE001 - every failure becomes part of the report
            results[name] = {"error": error_info(e)}
    json.dump(results, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
