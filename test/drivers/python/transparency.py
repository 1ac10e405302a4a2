#!/usr/bin/python3
"""Transparency probes for psycopg 3 and asyncpg (same arguments as scenarios.py); prints one JSON object."""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios as base  # noqa: E402


def diag(e):
    d = getattr(e, "diag", None)
    if d is None:
        return {"type": type(e).__name__, "sqlstate": getattr(e, "sqlstate", None), "message": str(e).splitlines()[0],
                "detail": getattr(e, "detail", None), "hint": getattr(e, "hint", None), "position": getattr(e, "position", None),
                "constraint": getattr(e, "constraint_name", None)}
    return {"type": type(e).__name__, "sqlstate": d.sqlstate, "message": d.message_primary, "detail": d.message_detail,
            "hint": d.message_hint, "position": d.statement_position, "constraint": d.constraint_name,
            "severity": d.severity_nonlocalized}


class Psycopg(base.Psycopg):
    def named_cursor(self):
        with self.connect() as conn:
            out = {}
            with conn.transaction():
                with conn.cursor(name="transp_cur") as cur:
                    cur.execute("SELECT g, current_setting('app.current_tenant') FROM generate_series(1, 55) g")
                    out["first"] = cur.fetchmany(10)
                    cur.scroll(20)
                    out["after_scroll"] = cur.fetchone()
                    out["rest"] = len(cur.fetchall())
            # A named cursor in autocommit mode: psycopg declares it WITHOUT HOLD -> error on a direct connection too.
            try:
                with conn.cursor(name="transp_auto") as cur:
                    cur.execute("SELECT 1")
                    out["autocommit"] = cur.fetchall()
            except Exception as e:  # noqa: BLE001
                out["autocommit"] = diag(e)
            # itersize iteration inside a non-autocommit connection
            conn.autocommit = False
            with conn.cursor(name="transp_iter") as cur:
                cur.itersize = 7
                cur.execute("SELECT g FROM generate_series(1, 30) g")
                out["iter"] = sum(r[0] for r in cur)
            conn.commit()
            # WITH HOLD cursor outliving its transaction (documented: until the end of the transaction through the proxy)
            try:
                cur = conn.cursor(name="transp_hold", withhold=True)
                cur.execute("SELECT g FROM generate_series(1, 5) g")
                conn.commit()
                out["withhold"] = cur.fetchall()
                cur.close()
                conn.commit()
            except Exception as e:  # noqa: BLE001
                out["withhold"] = diag(e)
                conn.rollback()
            return out

    def pipeline_mode(self):
        with self.connect() as conn:
            out = {}
            with conn.pipeline():
                c1 = conn.execute("SELECT %s::int AS a", [1], prepare=True)
                c2 = conn.execute("SET TimeZone = 'Asia/Tokyo'")
                c3 = conn.execute("SELECT current_setting('TimeZone'), current_setting('app.current_tenant')")
                with conn.transaction():
                    c4 = conn.execute("SELECT %s::text || 'x'", ["y"])
                    c5 = conn.execute("SELECT g FROM generate_series(1, 3) g")
            out["results"] = [c1.fetchall(), c2.statusmessage, c3.fetchall(), c4.fetchall(), c5.fetchall()]
            out["later_tz"] = conn.execute("SELECT current_setting('TimeZone')").fetchone()[0]
            # executemany with returning (psycopg >= 3.1)
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE em (id serial PRIMARY KEY, v text)")
                cur = conn.cursor()
                cur.executemany("INSERT INTO em (v) VALUES (%s) RETURNING id, v", [("a",), ("b",), ("c",)], returning=True)
                rows = []
                while True:
                    rows.extend(cur.fetchall())
                    if not cur.nextset():
                        break
                out["executemany_returning"] = rows
                raise self.psycopg.Rollback()
            return out

    def pipeline_many_prepared(self):
        # Many statements prepared in pipelines across transactions (psycopg prepares after prepare_threshold uses)
        with self.connect() as conn:
            conn.prepare_threshold = 0
            out = []
            for rnd in range(3):
                with conn.pipeline():
                    curs = [conn.execute("SELECT %%s::int + %d" % i, [rnd]) for i in range(12)]
                out.append([c.fetchone()[0] for c in curs])
            return out

    def errors(self):
        with self.connect() as conn:
            out = {}
            for name, sql in [("syntax", "SELECT 1 FROMM x"), ("undef_col", "SELECT bodyy FROM notes"),
                              ("div", "SELECT 1/0"), ("cast", "SELECT 'x'::int")]:
                try:
                    conn.execute(sql, prepare=True)
                except Exception as e:  # noqa: BLE001
                    out[name] = diag(e)
            try:
                with conn.transaction():
                    conn.execute("CREATE TEMP TABLE u (id int PRIMARY KEY)")
                    conn.execute("INSERT INTO u VALUES (1)")
                    conn.execute("INSERT INTO u VALUES (1)")
            except Exception as e:  # noqa: BLE001
                out["unique"] = diag(e)
            out["after"] = conn.execute("SELECT 1").fetchone()[0]
            return out

    def notices(self):
        with self.connect() as conn:
            got = []
            conn.add_notice_handler(lambda d: got.append([d.severity_nonlocalized, d.sqlstate, d.message_primary]))
            conn.execute("DROP TABLE IF EXISTS no_such_tbl_q")
            conn.execute("COMMIT")
            with conn.pipeline():
                conn.execute("DROP TABLE IF EXISTS no_such_tbl_p")
            return got


class base_rollback(Exception):
    pass


class Asyncpg(base.Asyncpg):
    async def cursors_and_types(self):
        conn = await self.connect()
        try:
            out = {}
            async with conn.transaction():
                cur = await conn.cursor("SELECT g FROM generate_series(1, 40) g")
                out["fetch"] = [r[0] for r in await cur.fetch(5)]
                await cur.forward(10)
                out["after_forward"] = (await cur.fetchrow())[0]
                out["iter"] = sum([r[0] async for r in conn.cursor("SELECT g FROM generate_series(1, 100) g", prefetch=9)])
            row = await conn.fetchrow("SELECT ARRAY[1,NULL,3]::int[] AS a, '{\"k\":1}'::jsonb AS j, 123456789012345678901234567890.123456789::numeric AS n, NULL::text AS z, 'infinity'::timestamptz AS inf, '\\x00ff'::bytea AS b")
            out["types"] = {k: (str(v) if v is not None and not isinstance(v, (list, str)) else v) for k, v in row.items()}
            big = "x" * (10 * 1024 * 1024)
            out["big"] = await conn.fetchval("SELECT length($1::text)", big)
            # executemany, then the same statements via prepare() across transactions
            st = await conn.prepare("SELECT $1::int * 2")
            out["prepared"] = [await st.fetchval(i) for i in range(5)]
            got = []
            conn.add_log_listener(lambda c, m: got.append([m.severity, m.sqlstate, m.message]))
            await conn.execute("DROP TABLE IF EXISTS no_such_tbl_a")
            await asyncio.sleep(0.05)
            out["notices"] = got
            try:
                await conn.execute("INSERT INTO notes (id, body) VALUES (1, 'dup'), (1, 'dup')")
            except Exception as e:  # noqa: BLE001
                out["dup"] = diag(e)
            return out
        finally:
            await conn.close()

    async def statement_cache_churn(self):
        # More distinct statements than pool.max_prepared_statements (the test proxy's is small), each reused later.
        conn = await self.connect()
        try:
            out = []
            for rnd in range(3):
                for i in range(12):
                    out.append(await conn.fetchval("SELECT $1::int + %d" % i, rnd))
            return out
        finally:
            await conn.close()


NAMES = {"psycopg": ["named_cursor", "pipeline_mode", "pipeline_many_prepared", "errors", "notices"],
         "asyncpg": ["cursors_and_types", "statement_cache_churn"]}


def main():
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--driver", required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--set-context", dest="set_context")
    p.add_argument("--dsn2")
    p.add_argument("--set-context2", dest="set_context2")
    p.add_argument("--proof")
    p.add_argument("--proof2")
    p.add_argument("--only", required=True)
    args = p.parse_args()
    args.dsn2 = args.dsn2 or args.dsn
    runner = Psycopg(args) if args.driver == "psycopg" else Asyncpg(args)
    results = {}
    for name in args.only.split(","):
        try:
            r = getattr(runner, name)()
            if asyncio.iscoroutine(r):
                r = asyncio.run(asyncio.wait_for(r, 60))
            results[name] = base.norm(r)
        except Exception as e:  # noqa: BLE001
            results[name] = {"error": diag(e)}
    json.dump(results, sys.stdout, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
