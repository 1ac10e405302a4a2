-- rls-kit.sql: an example of protecting an application's tables behind pg-tenant-proxy with the tenancy
-- kit. First install the kit and the proxy's proof key (as a superuser):
--   pg-tenant-proxy kit --apply --config proxy.yaml --database-url postgres://postgres@db/app
-- then run this as a superuser in the same database, after replacing the example names:
--   app_pool        the proxy's backend role (backend.user)
--   app_owner       the role that owns the tables (migrations run as it, never the proxy)
--   public.orders   an example shared table with a tenant_id column
--   tenant_acme     an example per-tenant schema of tenant acme
-- Then check with: pg-tenant-proxy doctor --config proxy.yaml

-- 1. Roles: the proxy's role is not a superuser, cannot bypass RLS, and owns nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_pool') THEN CREATE ROLE app_pool LOGIN; END IF;
END $$;
ALTER ROLE app_pool NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;

-- 2. No CREATE in schemas tenants reach (PostgreSQL before 15 grants it on public to everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- 3. A shared table: protect_table enables and forces row-level security and adds a restrictive policy
--    tenant_id = (SELECT tenancy.current_tenant()), for reads and writes (WITH CHECK). A client that
--    changes app.current_tenant gets NULL from current_tenant(), so it sees and writes nothing.
CREATE TABLE IF NOT EXISTS public.orders (
  id bigserial PRIMARY KEY,
  tenant_id text NOT NULL DEFAULT tenancy.current_tenant(),
  item text
);
ALTER TABLE public.orders OWNER TO app_owner;
SELECT tenancy.protect_table('public.orders', 'tenant_id');
GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO app_pool;
GRANT USAGE ON SEQUENCE public.orders_id_seq TO app_pool;

-- 4. A per-tenant schema: protect_schema binds every table in it to its tenant, so another tenant's
--    schema-qualified read returns nothing and its writes are refused. Re-run it after adding tables.
CREATE SCHEMA IF NOT EXISTS tenant_acme AUTHORIZATION app_owner;
CREATE TABLE IF NOT EXISTS tenant_acme.notes (id bigserial PRIMARY KEY, body text);
ALTER TABLE tenant_acme.notes OWNER TO app_owner;
SELECT tenancy.protect_schema('tenant_acme', 'acme');
GRANT USAGE ON SCHEMA tenant_acme TO app_pool;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_acme.notes TO app_pool;
GRANT USAGE ON SEQUENCE tenant_acme.notes_id_seq TO app_pool;

-- 5. What the database must still do, and the kit cannot:
--    - every new table tenants can reach gets protect_table or protect_schema (doctor lists the ones without);
--    - views over such tables: WITH (security_invoker = true) (PostgreSQL 15+), so RLS applies to the caller;
--    - no SECURITY DEFINER function that reads tenant data is granted to app_pool;
--    - migrations and SRE work connect as a static user with tenant: none, under a separate role.
