// SQL for the sample multi-tenant schema (per-tenant schemas + a shared table) shared by the demo and the tests,
// protected by the tenancy kit's verified policies (or, for tests of the old behaviour, by raw-setting ones).

/** Quotes an SQL identifier the way PostgreSQL's quote_ident does (always quoted). */
function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0')) throw new Error(`invalid SQL identifier: ${JSON.stringify(name)}`);
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes an SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1). */
function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('invalid SQL literal: contains NUL');
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * How the sample tables are protected:
 *  - verified: the tenancy kit (sql/tenancy-kit.sql, installed first) binds public.orders to its tenant_id
 *    column and each tenant_<t> schema to tenant <t>, through tenancy.current_tenant();
 *  - raw: the behaviour before the kit, kept to show what the kit stops: public.orders under a policy on
 *    current_setting('app.current_tenant'), per-tenant schemas isolated by search_path only.
 */
export type SampleProtection = 'verified' | 'raw';

/**
 * Returns one SQL script to run, as a superuser, inside the (freshly created) target database.
 * It creates schemas tenant_acme / tenant_globex (each with a `notes` table and one row), a shared
 * `public.orders` table, protects them (see SampleProtection), and grants `poolRole` (which must already
 * exist) exactly CONNECT + TEMPORARY on the database, USAGE on the three schemas, DML on the tables and
 * USAGE on the sequences — never CREATE on schema public.
 */
export function sampleSchemaSql(poolRole: string, protection: SampleProtection = 'verified'): string {
  const role = quoteIdent(poolRole);
  // The database name is only known at run time, so that one grant goes through dynamic SQL.
  const grantDb = `EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %s', current_database(), ${quoteLiteral(role)});`;
  const tag = '$sample_schema$';
  if (grantDb.includes(tag)) throw new Error('pool role name clashes with the dollar-quote tag');
  const protect =
    protection === 'verified'
      ? `
-- The database enforces the boundary: tenancy.current_tenant() is the tenant only with a valid proof.
SELECT tenancy.protect_table('public.orders', 'tenant_id');
SELECT tenancy.protect_schema('tenant_acme', 'acme');
SELECT tenancy.protect_schema('tenant_globex', 'globex');
`
      : `
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.orders FORCE ROW LEVEL SECURITY;
-- Fail closed: an unset setting yields NULL and an empty one '', neither equals a real tenant id.
-- But any client can set app.current_tenant itself: this trusts the proxy's guard alone.
CREATE POLICY tenant_isolation ON public.orders
  USING (tenant_id = current_setting('app.current_tenant', true))
  WITH CHECK (tenant_id = current_setting('app.current_tenant', true));
`;

  return `
CREATE SCHEMA tenant_acme;
CREATE SCHEMA tenant_globex;

CREATE TABLE tenant_acme.notes (id serial PRIMARY KEY, body text);
INSERT INTO tenant_acme.notes (body) VALUES ('acme note');

CREATE TABLE tenant_globex.notes (id serial PRIMARY KEY, body text);
INSERT INTO tenant_globex.notes (body) VALUES ('globex note');

CREATE TABLE public.orders (
  id serial PRIMARY KEY,
  tenant_id text NOT NULL,
  item text
);
INSERT INTO public.orders (tenant_id, item) VALUES
  ('acme', 'anvil'),
  ('acme', 'rocket'),
  ('globex', 'widget');
${protect}
-- Pre-15 servers let PUBLIC create in schema public; the pool role must not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO ${tag}
BEGIN
  ${grantDb}
END
${tag};
GRANT USAGE ON SCHEMA public, tenant_acme, tenant_globex TO ${role};
GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders, tenant_acme.notes, tenant_globex.notes TO ${role};
GRANT USAGE ON SEQUENCE public.orders_id_seq, tenant_acme.notes_id_seq, tenant_globex.notes_id_seq TO ${role};
`;
}
