-- tenancy-kit.sql: the database-enforced tenant boundary for pg-tenant-proxy.
-- Install it with `pg-tenant-proxy kit --apply --config FILE --database-url URL` as a superuser (it
-- revokes built-in functions, which only their owner can do); that also stores the proxy's proof key.
-- `pg-tenant-proxy kit` prints it. Idempotent: re-run it after upgrading the proxy. The two setting names
-- current_tenant() reads are filled in from the proxy's tenant.setting and tenant.proof_setting.
--
-- What it guarantees: tenancy.current_tenant() returns the tenant setting only when the proof the proxy
-- set next to it (an HMAC-SHA256 under a key the pool role cannot read) verifies and has not expired.
-- A client that changes the tenant setting by any route (SET, set_config, UPDATE pg_settings, a function
-- run from a string...) gets NULL, and a policy on NULL matches no row.

-- 1. The owner of everything here: cannot log in, owns the key table and runs current_tenant().
DO $kit$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_owner') THEN
    BEGIN
      CREATE ROLE tenancy_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created by a concurrent run in another database of this cluster
    END;
  ELSIF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_owner' AND (rolcanlogin OR rolsuper OR rolbypassrls OR rolcreaterole)) THEN
    ALTER ROLE tenancy_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE;
  END IF;
END
$kit$;

CREATE SCHEMA IF NOT EXISTS tenancy AUTHORIZATION tenancy_owner;
ALTER SCHEMA tenancy OWNER TO tenancy_owner;
REVOKE ALL ON SCHEMA tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA tenancy TO PUBLIC;

-- 2. The proof keys. Several rows may exist during a rotation (the proof names its key by kid). Nobody
--    but tenancy_owner (and superusers) can read them: not the pool role, not PUBLIC.
CREATE TABLE IF NOT EXISTS tenancy.proof_keys (
  kid text PRIMARY KEY CHECK (kid ~ '^[0-9a-f]{16}$'),
  ipad bytea NOT NULL CHECK (length(ipad) = 64), -- the key XOR 0x36..: HMAC's inner padded key
  opad bytea NOT NULL CHECK (length(opad) = 64), -- the key XOR 0x5c..: HMAC's outer padded key
  added_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tenancy.proof_keys OWNER TO tenancy_owner;
REVOKE ALL ON tenancy.proof_keys FROM PUBLIC;

-- 3. The verified tenant. PL/pgSQL, not LANGUAGE sql: an SQL function with SET and SECURITY DEFINER is
--    planned again on every call before PostgreSQL 18 (about 45% on a point lookup against 10%).
--    Few statements: the proxy's DISCARD ALL before each transaction drops every cached plan, and PL/pgSQL
--    then plans each of its statements and expressions again, so each one counts.
--    Proof: <kid>.<exp>.<mac>, mac = hex(HMAC-SHA256(key, tenant || E'\n' || exp)); exp (Unix seconds) is
--    digits only and last, so no tenant id can collide with another (tenant, exp) pair.
--    No sub-expression can raise an error on a malformed proof (no casts, no decode): anything malformed,
--    unset (NULL) or reset ('') makes the condition false or NULL, and the result NULL: fail closed.
--    The comparison is of the full 64-character hex strings with texteq (memcmp). It stops at the first
--    differing byte, but memcmp compares in word-sized blocks and the difference is nanoseconds, inside a
--    call that costs tens of microseconds, a query, a pooled round trip and a network: no attacker can
--    measure it. Hashing both sides before comparing would remove even that, but each sha256() call costs
--    microseconds here (OpenSSL 3 looks the digest up per call), so it would double the function's cost.
CREATE OR REPLACE FUNCTION tenancy.current_tenant() RETURNS text
  LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  t text := current_setting(@TENANT_SETTING@, true);
  p text := current_setting(@PROOF_SETTING@, true);
  k tenancy.proof_keys;
BEGIN
  SELECT * INTO k FROM tenancy.proof_keys WHERE kid = split_part(p, '.', 1);
  IF t <> ''
     AND p ~ '^[0-9a-f]{16}\.[0-9]{1,12}\.[0-9a-f]{64}$'
     -- not expired: fixed-width decimal strings compare like the numbers they hold
     AND lpad(split_part(p, '.', 2), 12, '0') > lpad(floor(extract(epoch FROM now()))::bigint::text, 12, '0')
     AND encode(sha256(k.opad || sha256(k.ipad || convert_to(t || E'\n' || split_part(p, '.', 2), 'UTF8'))), 'hex') = split_part(p, '.', 3)
  THEN
    RETURN t;
  END IF;
  RETURN NULL;
END
$fn$;
ALTER FUNCTION tenancy.current_tenant() OWNER TO tenancy_owner;
REVOKE ALL ON FUNCTION tenancy.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.current_tenant() TO PUBLIC;

-- 4. protect_table: ENABLE + FORCE row-level security and a RESTRICTIVE policy on the verified tenant.
--    Restrictive policies are ANDed with every permissive one, so an older permissive policy (on the raw
--    setting, say) can no longer widen access; a permissive USING (true) is added only when the table has
--    none (PostgreSQL denies everything when no permissive policy exists). The verified tenant is cast to
--    the column's type inside the sub-select, so it is computed once per query and indexes still apply.
CREATE OR REPLACE FUNCTION tenancy.protect_table(tbl regclass, tenant_column name) RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  v_type text;
  v_expr text;
BEGIN
  SELECT format_type(a.atttypid, a.atttypmod) INTO v_type FROM pg_attribute a
   WHERE a.attrelid = tbl AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF v_type IS NULL THEN
    RAISE EXCEPTION 'table % has no column %', tbl, tenant_column USING ERRCODE = 'undefined_column';
  END IF;
  v_expr := format('%I = (SELECT tenancy.current_tenant()::%s)', tenant_column, v_type);
  PERFORM tenancy._bind(tbl, v_expr);
END
$fn$;

-- 5. protect_schema: binds every table of a per-tenant schema to its tenant. A schema-qualified read of
--    another tenant's table then returns no row, and writes are refused. Re-run it after adding tables
--    (doctor reports a table without the policy).
CREATE OR REPLACE FUNCTION tenancy.protect_schema(schema_name name, tenant text) RETURNS integer
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
  n integer := 0;
BEGIN
  IF tenant IS NULL OR tenant = '' THEN
    RAISE EXCEPTION 'protect_schema needs a tenant id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR r IN SELECT c.oid::regclass AS tbl FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
            WHERE s.nspname = schema_name AND c.relkind IN ('r', 'p') ORDER BY c.relname
  LOOP
    PERFORM tenancy._bind(r.tbl, format('(SELECT tenancy.current_tenant()) = %L', tenant));
    n := n + 1;
  END LOOP;
  RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION tenancy._bind(tbl regclass, expr text) RETURNS void
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('DROP POLICY IF EXISTS tenancy_boundary ON %s', tbl);
  EXECUTE format('CREATE POLICY tenancy_boundary ON %s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)', tbl, expr, expr);
  IF NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = tbl AND p.polpermissive) THEN
    EXECUTE format('CREATE POLICY tenancy_access ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true)', tbl);
  END IF;
END
$fn$;
ALTER FUNCTION tenancy.protect_table(regclass, name) OWNER TO tenancy_owner;
ALTER FUNCTION tenancy.protect_schema(name, text) OWNER TO tenancy_owner;
ALTER FUNCTION tenancy._bind(regclass, text) OWNER TO tenancy_owner;
-- Only the installer (a superuser or the tables' owner) runs these; they act as the caller.
REVOKE ALL ON FUNCTION tenancy.protect_table(regclass, name), tenancy.protect_schema(name, text), tenancy._bind(regclass, text) FROM PUBLIC;

-- 6. What one shared pool role would otherwise let a tenant reach (see README, "What the kit revokes").
--    Functions are per database, so this runs in each database the proxy serves. Superusers keep them.
--    Only a built-in's owner (a superuser) can revoke it: on a managed service without one, each REVOKE
--    that is refused becomes a warning, the rest of the kit still installs, and doctor lists what is open.
DO $kit$
DECLARE
  f text;
BEGIN
  FOR f IN
    SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure) FROM pg_catalog.pg_proc p
     WHERE p.pronamespace = 'pg_catalog'::regnamespace
       AND (p.proname IN ('query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'ts_stat',
                          'loread', 'lowrite', 'pg_cancel_backend', 'pg_terminate_backend',
                          'pg_stat_get_activity', 'pg_stat_get_backend_activity')
            OR (p.proname = 'ts_rewrite' AND p.pronargs = 2 AND p.proargtypes[1] = 'text'::regtype)
            OR p.proname LIKE 'lo\_%')
    UNION ALL
    -- pg_stat_statements (if installed) shows every role's query text.
    SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure) FROM pg_catalog.pg_proc p
      JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
      JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
     WHERE e.extname = 'pg_stat_statements'
    UNION ALL
    SELECT 'REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC'
  LOOP
    BEGIN
      EXECUTE f;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE WARNING 'tenancy kit: could not run "%": %; pg-tenant-proxy doctor will report it', f, SQLERRM;
    END;
  END LOOP;
END
$kit$;
