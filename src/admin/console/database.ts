// The admin console's virtual database name, and the ParameterStatus values it shows at login
// (psql reads server_version, client_encoding and standard_conforming_strings).
export const CONSOLE_DATABASE = 'pgtenantproxy';

export function consoleParams(serverParams: Map<string, string> | null, user: string): Map<string, string> {
  return new Map([
    // The real server's version when known, so psql does not warn about a version mismatch.
    ['server_version', serverParams?.get('server_version') ?? '18.0'],
    ['server_encoding', 'UTF8'],
    ['client_encoding', 'UTF8'],
    ['DateStyle', 'ISO, MDY'],
    ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'],
    ['is_superuser', 'off'],
    ['session_authorization', user],
    ['application_name', 'pg-tenant-proxy console'],
  ]);
}
