// A statement's shape: its text with every string and numeric literal replaced by a placeholder, so that
// `UPDATE t SET x = 5 WHERE id = 7` and `... x = 6 WHERE id = 8` share one cached guard verdict. The lexer
// follows PostgreSQL's scan.l for what guarded tenants can use (UTF8, standard_conforming_strings on):
// '...' with '' doubling, E'...' with backslash escapes, $tag$...$tag$, "quoted identifiers", -- and nested
// /* */ comments, numbers. Anything it is not sure about (unterminated quotes, U&/B/X/N prefixes, adjacent
// strings that the server would join, trailing junk after a number, control characters) returns null, and
// the statement gets a full parse. Reference: src/backend/parser/scan.l in PostgreSQL.

export interface Shape {
  /** The text with literals replaced, comments and whitespace runs collapsed to one space. */
  key: string;
  /**
   * Per literal, the byte offsets where the parser may place its A_Const: the literal's start, and for a
   * number directly after a unary minus, the minus (the parser folds `-5` into one constant there).
   */
  literals: Array<[number, number]>;
}

const STRING = '\u0001s';
const NUMBER = '\u0001n';

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
/** scan.l ident_start: [A-Za-z\200-\377_] (any non-ASCII character in a UTF8 string). */
const isIdentStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 0x80;
/** scan.l ident_cont: ident_start, digits and $. */
const isIdentCont = (c: number): boolean => isIdentStart(c) || isDigit(c) || c === 36;
/** scan.l space (PostgreSQL 15 and older do not count \v). */
const isSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13 || c === 12;

/** The key under construction: verbatim slices between replaced spans (literals, comments, whitespace runs). */
interface Builder {
  sql: string;
  ascii: boolean;
  key: string;
  from: number;
  literals: Array<[number, number]>;
}

// Top-level helpers, not closures: no per-call function objects on this hot path.
function replace(b: Builder, start: number, end: number, by: string): void {
  b.key += b.sql.slice(b.from, start) + by;
  b.from = end;
}

function byteAt(b: Builder, i: number): number {
  return b.ascii ? i : Buffer.byteLength(b.sql.slice(0, i));
}

/** The literal sql[start, end) becomes a placeholder; `minus` is the index of a unary minus before a number, or -1. */
function literal(b: Builder, start: number, end: number, placeholder: string, minus: number): void {
  replace(b, start, end, placeholder);
  const at = byteAt(b, start);
  b.literals.push([at, minus >= 0 ? byteAt(b, minus) : at]);
}

export function statementShape(sql: string): Shape | null {
  const n = sql.length;
  const b: Builder = { sql, ascii: !/[^\x00-\x7f]/.test(sql), key: '', from: 0, literals: [] };
  let i = 0;
  /** The last significant token was a string literal: another one next could be joined to it by the server. */
  let afterString = false;
  /** Index of the last significant character if it was a lone '-', else -1. */
  let minusAt = -1;
  let space = false;

  while (i < n) {
    const c = sql.charCodeAt(i);
    const next = i + 1 < n ? sql.charCodeAt(i + 1) : -1;

    // Whitespace and comments: one space in the key.
    if (isSpace(c) || (c === 45 && next === 45) || (c === 47 && next === 42)) {
      const wsStart = i;
      if (c === 45) {
        while (i < n && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++;
      } else if (c === 47) {
        let depth = 0;
        do {
          if (i + 1 >= n) return null; // unterminated comment
          const a = sql.charCodeAt(i);
          const b = sql.charCodeAt(i + 1);
          if (a === 47 && b === 42) {
            depth++;
            i += 2;
          } else if (a === 42 && b === 47) {
            depth--;
            i += 2;
          } else i++;
        } while (depth > 0);
      } else i++;
      // A lone space stays as it is; any other run of whitespace and comments becomes one space.
      if (space) replace(b, wsStart, i, '');
      else if (!(c === 32 && i === wsStart + 1)) replace(b, wsStart, i, ' ');
      space = true;
      continue;
    }
    space = false;
    const start = i;

    if (c === 39) {
      // '...' ('' is a quote inside; backslashes are plain characters with standard_conforming_strings on)
      const end = endOfQuoted(sql, i + 1, false);
      if (end < 0 || afterString) return null;
      i = end;
      literal(b, start, i, STRING, -1);
      minusAt = -1;
      afterString = true;
      continue;
    }
    if (c === 34) {
      const end = endOfQuoted(sql, i + 1, false, 34);
      if (end < 0 || end === i + 2) return null; // unterminated, or "" (a zero-length identifier is an error)
      i = end;
      afterString = false;
      minusAt = -1;
      continue;
    }
    if (c === 36) {
      if (isDigit(next)) {
        // $n parameter
        i++;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        if (i < n && (isIdentCont(sql.charCodeAt(i)) || sql.charCodeAt(i) === 46)) return null; // trailing junk
        afterString = false;
        minusAt = -1;
        continue;
      }
      // $tag$ ... $tag$
      let j = i + 1;
      if (j < n && isIdentStart(sql.charCodeAt(j))) {
        j++;
        while (j < n && isIdentCont(sql.charCodeAt(j)) && sql.charCodeAt(j) !== 36) j++;
      }
      if (j >= n || sql.charCodeAt(j) !== 36) return null; // a lone $ is not something the guard guesses about
      const delim = sql.slice(i, j + 1);
      const close = sql.indexOf(delim, j + 1);
      if (close < 0 || afterString) return null;
      i = close + delim.length;
      literal(b, start, i, STRING, -1);
      minusAt = -1;
      afterString = true;
      continue;
    }
    if (isDigit(c) || (c === 46 && isDigit(next))) {
      while (i < n && isDigit(sql.charCodeAt(i))) i++;
      if (i < n && sql.charCodeAt(i) === 46) {
        i++;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
      }
      const e = i < n ? sql.charCodeAt(i) : -1;
      if (e === 69 || e === 101) {
        let j = i + 1;
        const s = j < n ? sql.charCodeAt(j) : -1;
        if (s === 43 || s === 45) j++;
        if (!(j < n && isDigit(sql.charCodeAt(j)))) return null; // 1e, 1e+ : junk the majors treat differently
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
        i = j;
      }
      // 0x1F, 1_000, 123abc, 1.2.3: forms or junk that PostgreSQL majors lex differently
      if (i < n && (isIdentCont(sql.charCodeAt(i)) || sql.charCodeAt(i) === 46)) return null;
      if (afterString) afterString = false;
      literal(b, start, i, NUMBER, minusAt);
      minusAt = -1;
      continue;
    }
    if (isIdentStart(c)) {
      i++;
      while (i < n && isIdentCont(sql.charCodeAt(i))) i++;
      const after = i < n ? sql.charCodeAt(i) : -1;
      if (i - start === 1 && after === 39) {
        if (c !== 69 && c !== 101) return null; // B'..', X'..', N'..'
        // E'...': backslash escapes
        const end = endOfQuoted(sql, i + 1, true);
        if (end < 0 || afterString) return null;
        i = end;
        literal(b, start, i, STRING, -1);
        minusAt = -1;
        afterString = true;
        continue;
      }
      if (i - start === 1 && (c === 85 || c === 117) && after === 38) return null; // U&'..' / U&".."
      if (c === 0xfffd || sql.slice(start, i).includes('\ufffd')) return null; // bytes that were not UTF8
      afterString = false;
      minusAt = -1;
      continue;
    }
    // Control characters, backslash, \v: not in anything a tenant needs; let the parser decide.
    if (c < 32 || c === 92 || c === 127) return null;
    i++;
    afterString = false;
    minusAt = c === 45 ? start : -1;
  }
  let key = b.key + sql.slice(b.from);
  // Leading and trailing whitespace or comments do not change the tokens (a one-space key part is ours).
  if (key.charCodeAt(key.length - 1) === 32) key = key.slice(0, -1);
  if (key.charCodeAt(0) === 32) key = key.slice(1);
  return { key, literals: b.literals };
}

/**
 * Index just past the closing quote of a quoted span whose body starts at `from`, or -1 if unterminated.
 * A doubled quote is a quote inside; with `backslash`, a backslash escapes the next character (E'...').
 */
function endOfQuoted(sql: string, from: number, backslash: boolean, quote = 39): number {
  const n = sql.length;
  let i = from;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (backslash && c === 92) {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (i + 1 < n && sql.charCodeAt(i + 1) === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}
