-- rls-kit.sql: an example hardening script for a database behind pg-tenant-proxy.
-- Run it as a superuser in the application database, after replacing the example names:
--   app_pool        the proxy's backend role (backend.user)
--   app_owner       the role that owns the tables (migrations run as it, never the proxy)
--   public.orders   an example shared table with a tenant_id column
-- The proxy sets app.current_tenant (tenant.setting) for every transaction; the database enforces it.
-- Then run: pg-tenant-proxy doctor --config FILE

-- 1. Roles: the proxy's role is not a superuser, cannot bypass RLS, and owns nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_pool') THEN CREATE ROLE app_pool LOGIN; END IF;
END $$;
ALTER ROLE app_pool NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;

-- 2. No CREATE in schemas tenants reach (PostgreSQL before 15 grants it on public to everyone).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- 3. One helper every policy uses. NULLIF turns '' (a reset setting) into NULL, and NULL never equals a
--    tenant id, so with no tenant set no row matches: the policies fail closed.
CREATE OR REPLACE FUNCTION public.current_tenant() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT NULLIF(pg_catalog.current_setting('app.current_tenant', true), '') $$;
REVOKE ALL ON FUNCTION public.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.current_tenant() TO app_pool;

-- 4. A shared table under row-level security: ENABLE, FORCE (so even the owner is bound), and a policy
--    that compares directly. Never COALESCE(current_setting(...), ...): that fails open.
CREATE TABLE IF NOT EXISTS public.orders (
  id bigserial PRIMARY KEY,
  tenant_id text NOT NULL DEFAULT public.current_tenant(),
  item text
);
ALTER TABLE public.orders OWNER TO app_owner;
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.orders FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON public.orders;
CREATE POLICY tenant_isolation ON public.orders
  USING (tenant_id = public.current_tenant())
  WITH CHECK (tenant_id = public.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO app_pool;
GRANT USAGE ON SEQUENCE public.orders_id_seq TO app_pool;

-- 5. What the database must still do, and the proxy cannot:
--    - every table tenants can reach gets steps 4's three statements (doctor lists the ones without RLS);
--    - views over such tables: WITH (security_invoker = true) (PostgreSQL 15+), so RLS applies to the caller;
--    - no SECURITY DEFINER function that reads tenant data or calls set_config is granted to app_pool;
--    - migrations and SRE work connect as a static user with tenant: none, under a separate role.
