// Recognises a client's own session reset: a simple Query made only of statements that put a session back to
// its defaults (RESET ALL, DISCARD, CLOSE ALL, UNLISTEN *, DEALLOCATE ALL, SELECT pg_advisory_unlock_all()).
// Client-side pools send one when a connection goes back to them: asyncpg's Pool.release() sends
// "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;".
//
// RESET ALL and DISCARD are refused for tenants because they would clear the tenant context for what runs
// after them. A reset is let through only as the first thing of a hold, and the session ends the hold at its
// ReadyForQuery (client-sink.ts): nothing of the client's runs before it under the context (so there is
// nothing for the read-back to find), and nothing after it before the proxy's own DISCARD ALL and a fresh
// context. Matching is structural and exact: any other statement (a ROLLBACK included), or any clause on
// these (a name, a WHERE on the SELECT), and it is not a reset.
// Reference: https://www.postgresql.org/docs/current/sql-discard.html

type Node = Record<string, unknown>;

/** True if every statement of a parse tree puts the session back to its defaults (and there is one). */
export function isSessionReset(tree: unknown): boolean {
  const stmts = (tree as { stmts?: Array<{ stmt?: Node }> })?.stmts;
  if (!Array.isArray(stmts) || stmts.length === 0) return false;
  return stmts.every(({ stmt }) => {
    if (!stmt || typeof stmt !== 'object') return false;
    const keys = Object.keys(stmt);
    return keys.length === 1 && resetStatement(keys[0], stmt[keys[0]] as Node);
  });
}

/** True if the tree holds a statement that drops the client's prepared statements (DISCARD ALL, DEALLOCATE ALL). */
export function dropsPreparedStatements(tree: unknown): boolean {
  const stmts = (tree as { stmts?: Array<{ stmt?: Node }> })?.stmts ?? [];
  return stmts.some(({ stmt }) => {
    const d = stmt?.DiscardStmt as Node | undefined;
    return (d !== undefined && d.target === 'DISCARD_ALL') || stmt?.DeallocateStmt !== undefined;
  });
}

function resetStatement(kind: string, body: Node): boolean {
  switch (kind) {
    case 'VariableSetStmt':
      return body.kind === 'VAR_RESET_ALL' && only(body, ['kind', 'location']);
    case 'DiscardStmt':
      return typeof body.target === 'string' && only(body, ['target']);
    case 'ClosePortalStmt':
    case 'UnlistenStmt':
      return only(body, []); // CLOSE ALL, UNLISTEN * (a name would be a key)
    case 'DeallocateStmt':
      return body.isall === true && only(body, ['isall', 'location']);
    case 'SelectStmt':
      return advisoryUnlockAll(body);
    default:
      return false;
  }
}

/** Exactly `SELECT pg_advisory_unlock_all()` (or pg_catalog-qualified): one target, no FROM, no clause. */
function advisoryUnlockAll(body: Node): boolean {
  if (!only(body, ['targetList', 'limitOption', 'op']) || body.limitOption !== 'LIMIT_OPTION_DEFAULT' || body.op !== 'SETOP_NONE') return false;
  const targets = body.targetList as Array<{ ResTarget?: Node }>;
  if (!Array.isArray(targets) || targets.length !== 1) return false;
  const rt = targets[0].ResTarget;
  if (!rt || !only(rt, ['val', 'location'])) return false;
  const fc = (rt.val as Node | undefined)?.FuncCall as Node | undefined;
  if (!fc || !only(fc, ['funcname', 'funcformat', 'location']) || fc.funcformat !== 'COERCE_EXPLICIT_CALL') return false;
  const name = (fc.funcname as Array<{ String?: { sval?: string } }>).map((n) => n.String?.sval);
  return (name.length === 1 && name[0] === 'pg_advisory_unlock_all') || (name.length === 2 && name[0] === 'pg_catalog' && name[1] === 'pg_advisory_unlock_all');
}

function only(node: Node, allowed: readonly string[]): boolean {
  return Object.keys(node).every((k) => allowed.includes(k));
}
