// Encodes console results as the messages a PostgreSQL server sends for a simple query, so psql's -c,
// \x and --csv work: RowDescription, DataRow per row, CommandComplete.
// Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
import { Backend } from '../../protocol/codes.js';
import { frame } from '../../protocol/encode.js';
import type { Column, Table } from '../views.js';

/** pg_type OIDs and lengths of the two column types the console uses. */
const TYPES = { text: { oid: 25, len: -1 }, int: { oid: 20, len: 8 } } as const;

function rowDescription(columns: Column[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0].writeInt16BE(columns.length, 0);
  for (const c of columns) {
    const t = TYPES[c.type];
    const field = Buffer.alloc(18);
    field.writeInt32BE(0, 0); // table OID
    field.writeInt16BE(0, 4); // column number
    field.writeInt32BE(t.oid, 6);
    field.writeInt16BE(t.len, 10);
    field.writeInt32BE(-1, 12); // type modifier
    field.writeInt16BE(0, 16); // text format
    parts.push(Buffer.from(c.name + '\0', 'utf8'), field);
  }
  return frame(Backend.RowDescription, Buffer.concat(parts));
}

function dataRow(cells: Array<string | number | null>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(2)];
  parts[0].writeInt16BE(cells.length, 0);
  for (const v of cells) {
    const len = Buffer.alloc(4);
    if (v === null) {
      len.writeInt32BE(-1, 0);
      parts.push(len);
    } else {
      const bytes = Buffer.from(String(v), 'utf8');
      len.writeInt32BE(bytes.length, 0);
      parts.push(len, bytes);
    }
  }
  return frame(Backend.DataRow, Buffer.concat(parts));
}

export function commandComplete(tag: string): Buffer {
  return frame(Backend.CommandComplete, Buffer.from(tag + '\0', 'utf8'));
}

/** A whole result set: RowDescription, the rows, CommandComplete "SHOW". */
export function resultSet(t: Table): Buffer {
  return Buffer.concat([rowDescription(t.columns), ...t.rows.map(dataRow), commandComplete('SHOW')]);
}

export const emptyQueryResponse = (): Buffer => frame(Backend.EmptyQueryResponse, Buffer.alloc(0));
