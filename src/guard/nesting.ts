// A cheap upper estimate of how deeply a statement's parse tree can nest, read from its text before the
// parser sees it. libpg-query serialises the tree recursively inside WASM: a deep enough tree (about 3,000
// nested subselects, 12,000 chained casts or operators) overflows the stack there, and a WASM module
// whose stack overflowed mid-call is left corrupt ("memory access out of bounds" on every later parse).
// So such statements are refused before parsing (rule too_complex), never handed to the parser.

/** Refused above this (well under the ~9,000 levels at which serialising overflowed on this machine). */
export const MAX_NESTING_SCORE = 4000;

/** Words that nest an expression without parentheses (NOT NOT x, CASE ... CASE, x IS ... IS). */
const NESTING_WORDS = new Set(['not', 'is', 'case', 'collate', 'at', 'like', 'ilike', 'similar', 'between', 'in', 'any', 'all', 'some', 'array', 'row', 'exists']);

const isOp = (c: number): boolean =>
  // + - * / < > = ~ ! @ # % ^ & | ` ? :
  c === 43 || c === 45 || c === 42 || c === 47 || c === 60 || c === 62 || c === 61 || c === 126 || c === 33 || c === 64 || c === 35 || c === 37 || c === 94 || c === 38 || c === 124 || c === 96 || c === 63 || c === 58;
const isWord = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || (c >= 48 && c <= 57) || c === 36 || c >= 0x80;

/**
 * The largest, over the statement, of 3 × (open parentheses and brackets) + (operators and nesting words in
 * the open expression segments); a comma, semicolon, AND or OR ends a segment. Literals, quoted identifiers and
 * comments are skipped. An over-estimate for long flat expressions, which is what a cap needs.
 */
export function nestingScore(sql: string): number {
  const n = sql.length;
  const segments: number[] = [0]; // operators counted in each open parenthesis level's current segment
  let ops = 0; // sum of segments
  let max = 0;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    const next = i + 1 < n ? sql.charCodeAt(i + 1) : -1;
    if (c === 39 || c === 34) {
      i = skipQuoted(sql, i + 1, c, false);
      continue;
    }
    if ((c === 69 || c === 101) && next === 39 && (i === 0 || !isWord(sql.charCodeAt(i - 1)))) {
      i = skipQuoted(sql, i + 2, 39, true);
      continue;
    }
    if (c === 36 && !(i > 0 && isWord(sql.charCodeAt(i - 1)))) {
      const m = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 65));
      if (m) {
        const close = sql.indexOf(m[0], i + m[0].length);
        i = close < 0 ? n : close + m[0].length;
        continue;
      }
    }
    if (c === 45 && next === 45) {
      while (i < n && sql.charCodeAt(i) !== 10) i++;
      continue;
    }
    if (c === 47 && next === 42) {
      let depth = 0;
      do {
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else i++;
      } while (depth > 0 && i < n);
      continue;
    }
    if (c === 40 || c === 91) {
      segments.push(0);
    } else if (c === 41 || c === 93) {
      if (segments.length > 1) ops -= segments.pop()!;
    } else if (c === 44 || c === 59) {
      ops -= segments[segments.length - 1];
      segments[segments.length - 1] = 0;
    } else if (isOp(c)) {
      while (i + 1 < n && isOp(sql.charCodeAt(i + 1))) i++; // one run of operator characters
      segments[segments.length - 1]++;
      ops++;
    } else if (isWord(c)) {
      const start = i;
      while (i + 1 < n && isWord(sql.charCodeAt(i + 1))) i++;
      const word = i - start < 7 ? sql.slice(start, i + 1).toLowerCase() : '';
      if (word === 'and' || word === 'or') {
        // The parser flattens a AND b AND c into one node: each operand starts a new segment, one level down.
        ops -= segments[segments.length - 1] - 1;
        segments[segments.length - 1] = 1;
      } else if (NESTING_WORDS.has(word)) {
        segments[segments.length - 1]++;
        ops++;
      }
    }
    const score = 3 * (segments.length - 1) + ops;
    if (score > max) max = score;
    i++;
  }
  return max;
}

/** Index after the closing quote (or the end of the text if unterminated). */
function skipQuoted(sql: string, from: number, quote: number, backslash: boolean): number {
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (backslash && c === 92) i += 2;
    else if (c === quote && sql.charCodeAt(i + 1) === quote) i += 2;
    else if (c === quote) return i + 1;
    else i++;
  }
  return sql.length;
}
